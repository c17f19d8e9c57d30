"""The webhooks Wavix sends for simulated calls, in every shape Wavix has used, and sending them.

`deliveries(calls, ...)` plans what goes out: per call, optionally its on-call events (`call_setup`,
`ringing`, `answered`, then one terminal event: `completed`, `busy`, `cancelled` or `rejected`), then its
post-call webhook; then repeats a share (duplicates) and shuffles neighbours (reordering), all seeded.
`send_webhooks(...)` POSTs them as `application/json` at a steady rate, bounded in time, and records
what the target answered for each one, so a demo can tell accepted from duplicate.

Each call gets one `Variant` (seeded by its index) for all its webhooks (sandbox/spec/FACTS.md):

| variant | post-call body | on-call body |
|---|---|---|
| `spec` | `CallStatusWebhook` | `Call`: `id` and `uuid`, `call_completed` |
| `cdr` | the pre-2026 whole CDR: `answered_by`, `parent_uuid`, `sip_trunk`, `forward_fee`, no `direction` | as spec |
| `numeric` | numbers as JSON numbers (`from`, `to`, `charge`...), uppercase `ANSWERED` | numbers as numbers |
| `uuid` | as spec | deprecated `uuid` only, no `id` |
| `id` | as spec | `id` only |
| `finished` | as spec | the older docs' `call_finished` instead of `call_completed` |
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgspec

from sandbox.calls import SimCall, format_time

TERMINAL = {"answered": "completed", "busy": "busy", "noanswer": "cancelled", "failed": "rejected"}


class Variant(enum.StrEnum):
    SPEC = "spec"
    CDR = "cdr"
    NUMERIC = "numeric"
    UUID = "uuid"
    ID = "id"
    FINISHED = "finished"


ALL_VARIANTS = tuple(Variant)


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One planned POST: which call and event, in which variant, and whether it repeats an earlier one."""

    call_id: str
    kind: str  # post_call | on_call
    event: str  # the disposition (post-call) or event_type (on-call)
    variant: Variant
    duplicate: bool
    body: bytes


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one delivery: the target's status (None if no answer) and when it was sent."""

    call_id: str
    kind: str
    event: str
    variant: Variant
    duplicate: bool
    status: int | None
    error: str | None
    sent_at: float  # seconds after sending began
    elapsed_ms: float


_encode = msgspec.json.Encoder().encode
_encode_numbers = msgspec.json.Encoder(decimal_format="number").encode


def _number(text: str | None) -> int | str | None:
    """`"+14155550123"` as the JSON number 14155550123 (older docs), if it is all digits."""
    digits = (text or "").lstrip("+")
    return int(digits) if digits.isdigit() else text


def post_call_body(call: SimCall, variant: Variant) -> bytes:
    """The post-call webhook of `call` in `variant`."""
    if variant is Variant.CDR:
        body: dict[str, Any] = {
            "uuid": call.call_id, "date": call.date, "from": call.from_, "to": call.to,
            "disposition": call.disposition, "duration": call.duration, "destination": call.destination,
            "per_minute": call.per_minute, "charge": call.charge, "sip_trunk": call.sip_trunk,
            "forward_fee": call.forward_fee, "parent_uuid": call.parent_call_id, "answered_by": call.answered_by,
        }
        return _encode(body)
    body = {
        "direction": call.direction, "uuid": call.call_id, "destination": call.destination,
        "duration": call.duration, "charge": call.charge, "date": call.date, "disposition": call.disposition,
        "from": call.from_, "to": call.to, "per_minute": call.per_minute,
    }
    if variant is Variant.NUMERIC:
        body |= {"from": _number(call.from_), "to": _number(call.to), "disposition": call.disposition.upper(),
                 "charge": Decimal(call.charge), "per_minute": Decimal(call.per_minute)}
        return _encode_numbers(body)
    return _encode(body)


def on_call_events(call: SimCall) -> list[str]:
    """The on-call events of `call`, in order; the last one is terminal."""
    events = ["call_setup"]
    if call.disposition != "failed":
        events.append("ringing")
    if call.answered:
        events.append("answered")
    return [*events, TERMINAL[call.disposition]]


def on_call_body(call: SimCall, event: str, variant: Variant) -> bytes:
    """The spec's `Call` body for `event` of `call` in `variant`."""
    started, answered, ended = call.times()
    when = {"call_setup": started, "ringing": started + timedelta(seconds=1), "answered": answered}.get(event, ended)
    is_over = event in TERMINAL.values()
    body: dict[str, Any] = {
        "uuid": call.call_id, "id": call.call_id, "direction": call.direction, "event_type": event,
        "event_time": format_time(when or ended), "event_payload": None, "from": call.from_, "to": call.to,
        "call_started": call.date, "call_answered": _time(answered if event != "call_setup" else None),
        "call_completed": _time(ended if is_over else None),
        "machine_detected": call.answered_by == "machine" and event in ("answered", "completed"),
        "tag": call.tag,
    }
    if variant is Variant.UUID:
        del body["id"]
    elif variant is Variant.ID:
        del body["uuid"]
    elif variant is Variant.FINISHED:
        body["call_finished"] = body.pop("call_completed")
    elif variant is Variant.NUMERIC:
        body |= {"from": _number(call.from_), "to": _number(call.to)}
    return _encode(body)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def deliveries(
    calls: Sequence[SimCall],
    *,
    variants: Sequence[Variant] = ALL_VARIANTS,
    duplicates: float = 0.0,
    reorder: bool = False,
    on_call_events_too: bool = False,
    seed: int = 0,
) -> list[Delivery]:
    """The planned POSTs, in sending order; a pure function of its arguments (seeded)."""
    if not variants:
        raise ValueError("at least one variant is needed")
    if not 0.0 <= duplicates <= 1.0:
        raise ValueError("duplicates must be within 0..1")
    rng = random.Random(f"wavix-sandbox:{seed}:webhooks")
    plan: list[Delivery] = []
    for call in calls:
        variant = variants[random.Random(f"wavix-sandbox:{seed}:variant:{call.index}").randrange(len(variants))]
        if on_call_events_too:
            plan += [Delivery(call_id=call.call_id, kind="on_call", event=event, variant=variant, duplicate=False,
                              body=on_call_body(call, event, variant)) for event in on_call_events(call)]
        plan.append(Delivery(call_id=call.call_id, kind="post_call", event=call.disposition, variant=variant,
                             duplicate=False, body=post_call_body(call, variant)))
    # A duplicate goes out a little after its original (up to 20 places later), as a redelivery would.
    keyed = [(float(i), d) for i, d in enumerate(plan)]
    keyed += [(i + 1 + rng.randrange(0, 20) + 0.5, msgspec.structs.replace(d, duplicate=True))
              for i, d in enumerate(plan) if rng.random() < duplicates]
    keyed.sort(key=lambda pair: pair[0])
    plan = [d for _, d in keyed]
    if reorder:
        _shuffle_nearby(plan, rng, window=8)
    return plan


def _shuffle_nearby(plan: list[Delivery], rng: random.Random, window: int) -> None:
    """Swaps each delivery with one up to `window` places later: late, early, never far."""
    for i in range(len(plan) - 1):
        j = min(len(plan) - 1, i + rng.randrange(0, window + 1))
        plan[i], plan[j] = plan[j], plan[i]


async def send_webhooks(
    calls: Sequence[SimCall],
    target_url: str,
    *,
    rate: float = 50.0,
    variants: Sequence[Variant] = ALL_VARIANTS,
    duplicates: float = 0.0,
    reorder: bool = False,
    on_call_events: bool = False,
    client: httpx.AsyncClient | None = None,
    seed: int = 0,
    deadline_s: float = 300.0,
    max_in_flight: int = 64,
    on_first_send: Callable[[str], None] | None = None,
) -> list[Result]:
    """POSTs the webhooks of `calls` to `target_url`, `rate` per second; returns one Result each, in order.

    Stops starting new POSTs after `deadline_s` (those are reported with error "deadline"). Pass
    `on_first_send=sandbox.mark_sent` so a call's transcript clock starts with its first webhook.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    plan = deliveries(calls, variants=variants, duplicates=duplicates, reorder=reorder,
                      on_call_events_too=on_call_events, seed=seed)
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=10.0)
    limit = asyncio.Semaphore(max_in_flight)
    began = time.monotonic()
    first_seen: set[str] = set()
    try:
        tasks = []
        for i, delivery in enumerate(plan):
            wait = began + i / rate - time.monotonic()
            if time.monotonic() - began > deadline_s:
                tasks.append(asyncio.create_task(_skipped(delivery, began)))
                continue
            if wait > 0:
                await asyncio.sleep(wait)
            if delivery.call_id not in first_seen:
                first_seen.add(delivery.call_id)
                if on_first_send is not None:
                    on_first_send(delivery.call_id)
            await limit.acquire()
            tasks.append(asyncio.create_task(_post(http, target_url, delivery, began, limit)))
        return list(await asyncio.gather(*tasks))
    finally:
        if own_client:
            await http.aclose()


def _result(delivery: Delivery, status: int | None, error: str | None, sent_at: float, elapsed: float) -> Result:
    return Result(call_id=delivery.call_id, kind=delivery.kind, event=delivery.event, variant=delivery.variant,
                  duplicate=delivery.duplicate, status=status, error=error, sent_at=sent_at,
                  elapsed_ms=round(elapsed * 1000, 3))


async def _skipped(delivery: Delivery, began: float) -> Result:
    return _result(delivery, None, "deadline", time.monotonic() - began, 0.0)


async def _post(
    http: httpx.AsyncClient, url: str, delivery: Delivery, began: float, limit: asyncio.Semaphore
) -> Result:
    start = time.monotonic()
    try:
        response = await http.post(url, content=delivery.body, headers={"content-type": "application/json"})
        return _result(delivery, response.status_code, None, start - began, time.monotonic() - start)
    except httpx.HTTPError as e:
        return _result(delivery, None, f"{type(e).__name__}: {e}", start - began, time.monotonic() - start)
    finally:
        limit.release()


def summarize(results: Iterable[Result]) -> dict[str, int]:
    """Counts by answer: `"200"`, `"409"`, `"error"`..., for a demo's report."""
    counts: dict[str, int] = {}
    for result in results:
        key = str(result.status) if result.status is not None else "error"
        counts[key] = counts.get(key, 0) + 1
    return counts
