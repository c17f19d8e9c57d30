"""Process: the jobs arq runs. fetch -> enrich -> deliver (-> alert), a call's work in two jobs.

    process_call      the CDR -> `wavix.call.completed` -> alerts; for an answered call, schedules the
                      transcript poll
    deliver           one more attempt of one event to one destination (workers/deliver.py)
    fetch_transcript  the transcript -> `wavix.call.transcribed`, or `..._unavailable` when Wavix says
                      failed, answers 403 (not provisioned: we stop asking for a while), or it has not
                      come within TRANSCRIPT_WAIT; started by the poll or by Wavix's transcription webhook

Every way a job can end is one of: done, `arq.Retry` (the policy in workers/retry.py says when), or a
dead letter with the reason. `run()` below is the one place that turns failures into those endings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from arq import Retry
from redis.exceptions import RedisError

from contract import logs
from contract.jobs import DELIVER, FETCH_TRANSCRIPT, Receipt
from contract.webhooks import Kind, decode_on_call, decode_post_call
from workers.context import Resources
from workers.deliver.delivery import Delivery, deliver_all, retry_delivery
from workers.enrich import CallHints, completed_event, hints_from, transcript_event, unavailable_event
from workers.retry import CallError, GiveUp, NotProvisioned, TranscriptNotReady, Transient

log = logs.get("workers.process")

NOT_PROVISIONED_PAUSE_S = 3600
BUG_RETRIES = 3  # an unexpected error (a bug, a broken payload) is retried this often, then dead-lettered


def hints(receipt: Receipt) -> CallHints:
    """What the webhook said that the CDR will not: direction, machine detection."""
    try:
        if receipt.kind is Kind.POST_CALL:
            return hints_from(decode_post_call(receipt.body))
        if receipt.kind is Kind.ON_CALL:
            return hints_from(decode_on_call(receipt.body))
    except Exception:
        log.warning("job.hints_unreadable", call_id=receipt.call_id)
    return CallHints()


async def process_call(ctx: dict[str, Any], arg: Any) -> str:
    return await run(ctx, msgspec.convert(arg, Receipt), _process_call)


async def fetch_transcript(ctx: dict[str, Any], arg: Any) -> str:
    return await run(ctx, msgspec.convert(arg, Receipt), _fetch_transcript)


async def deliver(ctx: dict[str, Any], arg: Any) -> str:
    return await run(ctx, msgspec.convert(arg, Delivery), retry_delivery)


Job = TypeVar("Job", Receipt, Delivery)
Step = Callable[[Resources, Job, int], Awaitable[str]]


async def run(ctx: dict[str, Any], job: Job, step: Step[Job]) -> str:
    """Runs one job step and maps every failure to a retry or a dead letter; never drops silently."""
    resources: Resources = ctx["resources"]
    attempt: int = ctx.get("job_try", 1)
    name = step.__name__.lstrip("_")
    started = time.perf_counter()
    outcome = "error"
    try:
        outcome = await _guarded(resources, job, attempt, step, name)
        return outcome
    except Retry:
        outcome = "retry"
        raise
    finally:
        resources.metrics.jobs.labels(name, outcome.split(":")[0]).inc()
        resources.metrics.job_seconds.labels(name).observe(time.perf_counter() - started)


async def _guarded(resources: Resources, job: Job, attempt: int, step: Step[Job], name: str) -> str:
    kind = DELIVER if isinstance(job, Delivery) else name
    try:
        async with asyncio.timeout(resources.step_timeout_s):
            return await step(resources, job, attempt)
    except Retry:
        raise
    except GiveUp as e:
        await resources.dead_letter(kind, msgspec.msgpack.encode(job), job.call_id, e.reason, e.attempts)
        return "dead_letter"
    except CallError as e:  # from a sink (deliver) or a Wavix call not wrapped by _fetch
        raise _retry_or_dead(resources, e, attempt, job) from e
    except (RedisError, TimeoutError) as e:
        reason = f"{type(e).__name__} during {name}: {e}"
        raise _retry_or_dead(resources, Transient(reason), attempt, job) from e
    except Exception as e:
        if attempt > BUG_RETRIES:
            log.error("job.failed", exc_info=True, call_id=job.call_id, job=name, attempt=attempt)
            await resources.dead_letter(kind, msgspec.msgpack.encode(job), job.call_id, f"{type(e).__name__}: {e}",
                                        attempt)
            return "dead_letter"
        log.error("job.error", exc_info=True, call_id=job.call_id, job=name, attempt=attempt)
        raise Retry(defer=attempt * 5) from e


def _retry_or_dead(resources: Resources, error: CallError, attempt: int, job: Receipt | Delivery) -> Retry | GiveUp:
    began_ms = job.received_at_ms if isinstance(job, Receipt) else job.first_at_ms
    return resources.policy.retry_or_give_up(error, attempt, elapsed=time.time() - began_ms / 1000)


async def _fetch(call: Awaitable[Any], resources: Resources, receipt: Receipt, attempt: int) -> Any:
    """Awaits a Wavix call; its failure becomes the policy's verdict (arq.Retry or GiveUp)."""
    try:
        return await call
    except CallError as e:
        raise _retry_or_dead(resources, e, attempt, receipt) from e


async def _process_call(resources: Resources, receipt: Receipt, attempt: int) -> str:
    cdr = await _fetch(resources.wavix.get_cdr(receipt.call_id, attempt=attempt), resources, receipt, attempt)
    hint = hints(receipt)
    event = completed_event(cdr, hints=hint, rules=resources.alert_rules, now=datetime.now(UTC))
    await deliver_all(resources, event, attempt)
    if event.data.alert_reasons:
        await resources.alert(event)
    if event.data.disposition == "answered":
        poll = msgspec.structs.replace(receipt, kind=Kind.TRANSCRIPTION, event="poll")
        delay = resources.policy.transcript.ceiling(1)
        poll_id = f"{resources.settings.key_prefix}transcript:{receipt.call_id}:poll"
        await resources.follow_ups.enqueue(FETCH_TRANSCRIPT, poll, job_id=poll_id, defer_s=delay)
    return "published"


async def _fetch_transcript(resources: Resources, receipt: Receipt, attempt: int) -> str:
    cdr = await _fetch(resources.wavix.get_cdr(receipt.call_id, attempt=attempt), resources, receipt, attempt)
    hint, now = hints(receipt), datetime.now(UTC)
    if receipt.event == "failed":
        return await _unavailable(resources, cdr, "failed", hint, attempt)
    if await resources.redis.exists(resources.not_provisioned_key):
        return await _unavailable(resources, cdr, "not_provisioned", hint, attempt)
    try:
        transcript = await resources.wavix.get_transcript(receipt.call_id, attempt=attempt)
    except NotProvisioned:
        await resources.redis.set(resources.not_provisioned_key, "1", ex=NOT_PROVISIONED_PAUSE_S)
        return await _unavailable(resources, cdr, "not_provisioned", hint, attempt)
    except TranscriptNotReady as e:
        decision = _retry_or_dead(resources, e, attempt, receipt)
        if isinstance(decision, GiveUp):
            return await _unavailable(resources, cdr, "timed_out", hint, attempt)
        raise decision from e
    except CallError as e:
        raise _retry_or_dead(resources, e, attempt, receipt) from e
    await deliver_all(resources, transcript_event(cdr, transcript, hints=hint, now=now), attempt)
    return "published"


async def _unavailable(resources: Resources, cdr: Any, reason: str, hint: CallHints, attempt: int) -> str:
    await deliver_all(resources, unavailable_event(cdr, reason, hints=hint, now=datetime.now(UTC)), attempt)
    return f"unavailable:{reason}"
