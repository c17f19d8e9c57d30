"""Receive: `POST /webhooks/wavix/{token}`, the front door Wavix calls when a call changes state.

raw body -> authenticate -> classify -> record + dedup + enqueue (one atomic Redis round trip) -> 200.
It answers 200 only once the webhook is in Redis, so a 2xx always means "will be processed" (accepted,
duplicate) or "recorded for the call's job" (ignored: a progress event, one round trip too); every other
answer is a JSON error (service/errors.py) and leaves nothing behind. Wavix never retries, so a body is
refused only when it cannot be a call (contract/webhooks.py says exactly when).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from litestar import Request, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from contract import logs
from contract.webhooks import classify
from service.auth import Gate
from service.enqueue import Enqueuer
from service.errors import WebhookRejected
from service.httphead import HEAD_TIMEOUT_S
from service.metrics import ReceiverMetrics
from service.openapi import WebhookOperation

log = logs.get("service.webhooks")

BODY_TIMEOUT_S = HEAD_TIMEOUT_S  # for the whole body, from the app's first read: as long as the server gives the head


def _json_type(content_type: str | None) -> bool:
    if not content_type:
        return True  # Wavix always sends one; a sender that omits it is judged by its body
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


@post(
    "/webhooks/wavix/{token:str}",
    status_code=200,
    operation_class=WebhookOperation,
    summary="Receive a Wavix call webhook",
    description="Post-call, on-call and transcription-completed webhooks, in every variant Wavix has used.",
    tags=["webhooks"],
)
async def receive_webhook(request: Request[Any, Any, Any], token: FromPath[str]) -> dict[str, Any]:
    state = request.app.state
    metrics: ReceiverMetrics = state.metrics
    gate: Gate = state.gate
    if gate.restricted:
        client = request.client.host if request.client else None
        if not gate.source_ok(client, request.headers.get("x-forwarded-for")):
            metrics.count("unknown", "rejected_source")
            log.warning("webhook.rejected", reason="source", client=client)
            raise WebhookRejected(403, "forbidden", "this source address may not send webhooks")
    account = gate.account_for(token)
    if account is None:
        metrics.count("unknown", "rejected_token")
        log.warning("webhook.rejected", reason="token")
        raise WebhookRejected(404, "not_found", "no such webhook endpoint")
    if not _json_type(request.headers.get("content-type")):
        metrics.count("unknown", "rejected_type")
        raise WebhookRejected(415, "unsupported_media_type", "send the webhook as application/json")
    body = await _read_body(request, metrics)
    try:
        webhook = classify(body)
    except Exception:
        metrics.count("unknown", "rejected_payload")
        raise
    enqueuer: Enqueuer = state.enqueuer
    if not webhook.starts_work:
        try:
            await enqueuer.record(webhook, body, account.name)
        except Exception:
            metrics.count(webhook.kind, "unavailable", account.name)
            raise
        metrics.count(webhook.kind, "ignored", account.name)
        return {"status": "ignored", "call_id": webhook.call_id, "event": webhook.event}

    try:
        queued = await enqueuer.enqueue(webhook, body, account.name)
    except Exception:
        metrics.count(webhook.kind, "unavailable", account.name)
        raise
    outcome = "accepted" if queued else "duplicate"
    metrics.count(webhook.kind, outcome, account.name)
    log.info(f"webhook.{outcome}", call_id=webhook.call_id, kind=webhook.kind, call_event=webhook.event,
             account=account.name)
    return {"status": outcome, "call_id": webhook.call_id, "event": webhook.event}


async def _read_body(request: Request[Any, Any, Any], metrics: ReceiverMetrics) -> bytes:
    """The raw body; 413 over the limit, 400 when its framing breaks (Granian then ends the body with a
    disconnect, which Litestar reports as a 500: the sender's fault, not ours), 408 and the connection
    closed when it has not all come BODY_TIMEOUT_S after the head (as the server bounds the head itself,
    service/httphead.py: a sender trickling a body would otherwise hold a connection and a task for ever)."""
    try:
        return await _within(BODY_TIMEOUT_S, request.body())
    except TimeoutError as e:
        metrics.count("unknown", "rejected_body")
        raise WebhookRejected(408, "request_timeout", f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s",
                              close=True) from e
    except HTTPException as e:
        if e.status_code == 413:
            metrics.count("unknown", "rejected_size")
            raise
        metrics.count("unknown", "rejected_body")
        raise WebhookRejected(400, "bad_request", "the body could not be read: its framing is broken") from e


async def _within(seconds: float, body: Coroutine[Any, Any, bytes]) -> bytes:
    """`body` awaited, cancelled and TimeoutError after `seconds`: `asyncio.timeout` with one timer and no
    context manager, because it is on every webhook. The webhook path's CPU in-process (the app called
    directly, Redis answered at once; medians of eight 4,000-webhook rounds alternated in one process,
    2026-12-08): 54.2 µs with asyncio.timeout, 49.8 µs with this, 46.8 µs with no deadline at all. What
    asyncio.timeout adds is its two awaitables (`__aenter__`, `__aexit__`), its reschedule and its checks."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        return await body
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()
