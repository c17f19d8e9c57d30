"""Process: the jobs arq runs. fetch -> enrich -> deliver (-> alert), a call's work in two jobs.

    process_call      the CDR -> `wavix.call.completed` -> alerts; for an answered call, schedules the
                      transcript poll
    deliver           one more attempt of one event to one destination (workers/deliver/delivery.py)
    fetch_transcript  the transcript -> `wavix.call.transcribed`, or `..._unavailable` when Wavix says
                      failed, answers 403 (not provisioned), or it has not come within TRANSCRIPT_WAIT;
                      started by the poll or by Wavix's transcription webhook, under ONE job id per call
                      (`{KEY_PREFIX}transcript:{call_id}`), so the two never run side by side; a webhook
                      that comes while that job runs queues the call's follow-up (`...:follow_up`,
                      contract/intake.py), which waits for the job to end, then fetches (issue #22)

Every way a job can end is one of: done, `arq.Retry` (the policy in workers/retry.py says when), or a
dead letter with the reason. `run()` below is the one place that turns failures into those endings: a
give-up decided while handling an error is dead-lettered there too, a dead letter that cannot be written
retries the job, and a job re-run past `TRY_LIMIT` (crashes, shutdowns) is dead-lettered before arq's own
`max_tries` could drop it unrun.

Redis round trips per call (bench/redis_cost.py, post_call profile: 1.61 job runs a call, one event each to
EVENTS_STREAM; commands clients sent, an EVALSHA as one): the worker 23.22 before issue #29, 18.36 after; the
receiver 1.0 both. A job run is now arq's job read (one MULTI block), the call's reads, the ledger's claim, the
stream's append with its settle (workers/deliver/ledger.py `offer`), and the finish script, which also writes the
per-call record and the console's delivery tries (workers/runtime/supervise.py, workers/operate/record.py);
`process_call` adds the number index and the transcript poll's enqueue, the transcript job the transcript state.
docs/benchmarks.md, "Redis round trips per call", has the list and what is left.

One transcript outcome per call (`{KEY_PREFIX}transcript_state:{call_id}`, kept as long as the dedup mark):

    (nothing) -> transcribed                         the usual way
    (nothing) -> unavailable:<reason>                failed, not_provisioned, timed_out
    unavailable:<reason> -> transcribed              a transcript Wavix finished after we stopped waiting
    and nothing else: never a second `transcribed`, never a second `transcription_unavailable`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from arq import Retry
from arq.constants import in_progress_key_prefix, job_key_prefix
from redis.exceptions import RedisError

from contract import logs
from contract.events import CallTranscribedEvent, CloudEvent
from contract.intake import transcript_follow_up_id
from contract.jobs import DELIVER, FETCH_TRANSCRIPT, Receipt
from contract.privacy import slim_body
from contract.wavix import Cdr
from contract.webhooks import Kind, webhooks_key
from workers.deliver.delivery import Delivery, deliver_all, keep_delivered, retry_delivery
from workers.enrich import CallHints, completed_event, transcript_event, unavailable_event
from workers.fetch.hints import announced_in, gather, receipts_of
from workers.retry import Busy, CallError, GiveUp, NotProvisioned, TranscriptNotReady, Transient
from workers.runtime.context import Resources

log = logs.get("workers.process")

NOT_PROVISIONED_PAUSE_S = 3600
BUG_RETRIES = 3  # an unexpected error (a bug, a broken payload) is retried this often, then dead-lettered
TRY_LIMIT = 40  # above the policy's longest rule (20): the rest are re-runs after crashes or shutdowns
DEAD_LETTER_RETRY_S = 5.0
# A follow-up looks at the running transcript job again after 1 s, 2 s, ... then every 10 s: 355 s over
# TRY_LIMIT's 40 runs, more than a job may run (JOB_TIMEOUT, 300 s by default).
FOLLOW_UP_WAIT_S = 10.0
_NOT_PROVISIONED_WORDS = ("provision", "not enabled", "feature", "subscription", "plan")


async def process_call(ctx: dict[str, Any], arg: Any) -> str:
    return await run(ctx, msgspec.convert(arg, Receipt), _process_call)


async def fetch_transcript(ctx: dict[str, Any], arg: Any) -> str:
    receipt = msgspec.convert(arg, Receipt)
    if ctx.get("job_id") == transcript_follow_up_id(ctx["resources"].settings.key_prefix, receipt.key):
        return await run(ctx, receipt, _follow_up, name=FETCH_TRANSCRIPT)
    return await run(ctx, receipt, _fetch_transcript)


async def deliver(ctx: dict[str, Any], arg: Any) -> str:
    return await run(ctx, msgspec.convert(arg, Delivery), retry_delivery)


Job = TypeVar("Job", Receipt, Delivery)
Step = Callable[[Resources, Job, int], Awaitable[str]]


async def run(ctx: dict[str, Any], job: Job, step: Step[Job], name: str = "") -> str:
    """Runs one job step and maps every failure to a retry or a dead letter; never drops silently. `name`:
    the job's function when the step is not named after it (metrics, logs, the dead letter's kind)."""
    resources: Resources = ctx["resources"]
    attempt: int = ctx.get("job_try", 1)
    name = name or step.__name__.lstrip("_")
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
    if attempt > TRY_LIMIT:
        reason = f"too_many_tries: run {attempt} times (crashes or shutdowns included); arq would drop it next"
        return await _dead(resources, kind, job, reason, attempt)
    try:
        async with asyncio.timeout(resources.step_timeout_s):
            return await step(resources, job, attempt)
    except Retry:
        raise
    except Busy as e:  # the call's account has its most Wavix requests running: step aside (not a failure)
        raise Retry(defer=e.wait_s) from e
    except GiveUp as e:
        return await _dead(resources, kind, job, e.reason, e.attempts)
    except (CallError, RedisError, TimeoutError) as e:
        error = e if isinstance(e, CallError) else Transient(f"{type(e).__name__} during {name}: {e}")
        verdict = _retry_or_dead(resources, error, attempt, job)
        if isinstance(verdict, GiveUp):
            return await _dead(resources, kind, job, verdict.reason, verdict.attempts)
        raise verdict from e
    except Exception as e:
        if attempt > BUG_RETRIES:
            log.error("job.failed", exc_info=True, call_id=job.call_id, job=name, attempt=attempt)
            return await _dead(resources, kind, job, f"bug: {type(e).__name__}: {e}", attempt)
        log.error("job.error", exc_info=True, call_id=job.call_id, job=name, attempt=attempt)
        raise Retry(defer=attempt * 5) from e


async def _dead(resources: Resources, kind: str, job: Receipt | Delivery, reason: str, attempts: int) -> str:
    """Writes the dead letter; when even that fails, the job runs again rather than vanish. A call's letter
    first keeps its delivered marks, so its replay, however late, skips destinations that have the event."""
    try:
        if isinstance(job, Receipt):
            await keep_delivered(resources, job.call_id)
        # no more of the webhook than a replay reads (contract/privacy.py)
        letter = msgspec.structs.replace(job, body=slim_body(job.body)) if isinstance(job, Receipt) else job
        await resources.dead_letter(kind, msgspec.msgpack.encode(letter), job.call_id, reason, attempts)
    except RedisError as e:
        log.error("dead_letter.unwritten", call_id=job.call_id, job=kind, reason=reason, error=type(e).__name__)
        raise Retry(defer=DEAD_LETTER_RETRY_S) from e
    return "dead_letter"


def _retry_or_dead(resources: Resources, error: CallError, attempt: int, job: Receipt | Delivery) -> Retry | GiveUp:
    began_ms = job.received_at_ms if isinstance(job, Receipt) else job.first_at_ms
    return resources.policy.retry_or_give_up(error, attempt, elapsed=time.time() - began_ms / 1000)


async def _hints(resources: Resources, receipt: Receipt, cdr: Cdr, kept: list[Receipt] | None = None) -> CallHints:
    """The call's hints; its kept webhooks read through the batching client unless the job has them."""
    if kept is None:
        entries = await resources.batch.call("LRANGE", webhooks_key(resources.settings.key_prefix, receipt.key),
                                             0, -1)
        kept = receipts_of(entries, receipt.call_id)
    numbers = resources.accounts.numbers(receipt.account)  # the account's own (workers/fetch/accounts.py)
    return await gather(resources.redis, resources.settings.key_prefix, receipt, numbers, kept, cdr)


async def _transcript_reads(resources: Resources, receipt: Receipt) -> tuple[bytes | None, list[Receipt], bool]:
    """What fetch_transcript reads, in one round trip: the call's transcript state, its kept webhooks (the
    hints and Wavix's announcement), and whether transcripts are paused as not provisioned."""
    async with resources.redis.pipeline(transaction=False) as pipe:
        pipe.get(resources.transcript_state_key(receipt.call_id))
        pipe.lrange(webhooks_key(resources.settings.key_prefix, receipt.key), 0, -1)
        pipe.exists(resources.not_provisioned_key)
        state, entries, paused = await pipe.execute()
    return state, receipts_of(entries, receipt.call_id), bool(paused)


def _count(resources: Resources, event: CloudEvent) -> None:
    for anomaly in getattr(event.data, "anomalies", ()):  # wavix.call.erased has none
        resources.metrics.anomalies.labels(event.type, anomaly.field.split("[")[0]).inc()


async def _process_call(resources: Resources, receipt: Receipt, attempt: int) -> str:
    with resources.accounts.turn(receipt.account) as wavix:  # the job's account's key, within its limit
        cdr = await wavix.get_cdr(receipt.call_id, attempt=attempt)
    hints = await _hints(resources, receipt, cdr)
    event = completed_event(cdr, hints=hints, rules=resources.alert_rules, now=datetime.now(UTC))
    _count(resources, event)
    resources.metrics.directions.labels(event.data.direction).inc()
    resources.metrics.account_calls.labels(receipt.account).inc()
    if resources.number_index is not None:  # before any delivery: a call sent anywhere can be found to erase
        await resources.number_index.add(event)
    await deliver_all(resources, event, attempt)
    if event.data.alert_reasons:
        await resources.alert(event)
    if event.data.disposition == "answered" and resources.accounts.account(receipt.account).transcripts:
        poll = msgspec.structs.replace(receipt, kind=Kind.TRANSCRIPTION, event="poll")
        delay = resources.policy.transcript.ceiling(1)
        await resources.follow_ups.enqueue(FETCH_TRANSCRIPT, poll, job_id=resources.transcript_job_id(receipt.key),
                                           defer_s=delay)
    return "published"


async def _fetch_transcript(resources: Resources, receipt: Receipt, attempt: int) -> str:
    state, kept, paused = await _transcript_reads(resources, receipt)
    if state == b"transcribed":
        return "already_published"
    with resources.accounts.turn(receipt.account) as wavix:
        cdr = await wavix.get_cdr(receipt.call_id, attempt=attempt)
    hints = await _hints(resources, receipt, cdr, kept)
    announced = receipt.event if receipt.event in ("completed", "failed") else announced_in(kept)
    if announced == "failed":
        return await _unavailable(resources, cdr, "failed", hints, attempt, state)
    if announced is None and paused:
        return await _unavailable(resources, cdr, "not_provisioned", hints, attempt, state)
    try:
        with resources.accounts.turn(receipt.account) as wavix:
            transcript = await wavix.get_transcript(receipt.call_id, attempt=attempt)
    except NotProvisioned as e:
        if announced is None and any(word in e.reason.lower() for word in _NOT_PROVISIONED_WORDS):
            await resources.redis.set(resources.not_provisioned_key, "1", ex=NOT_PROVISIONED_PAUSE_S)
        return await _unavailable(resources, cdr, "not_provisioned", hints, attempt, state)
    except TranscriptNotReady as e:
        decision = _retry_or_dead(resources, e, attempt, receipt)
        if isinstance(decision, GiveUp):
            return await _unavailable(resources, cdr, "timed_out", hints, attempt, state)
        raise decision from e
    event = transcript_event(cdr, transcript, hints=hints, now=datetime.now(UTC))
    if not isinstance(event, CallTranscribedEvent):
        return await _unavailable(resources, cdr, "failed", hints, attempt, state)
    _count(resources, event)
    await deliver_all(resources, event, attempt)
    await resources.alert_transcript(event)  # before the state: a failure here runs the job (and this) again
    await resources.redis.set(resources.transcript_state_key(receipt.call_id), "transcribed",
                              ex=resources.settings.webhook_dedup_ttl)
    return "published"


async def _follow_up(resources: Resources, receipt: Receipt, attempt: int) -> str:
    """A transcription webhook that came while the call's transcript job ran (contract/intake.py): once that
    job has ended, hands over to it if it waits to run again (it reads the webhook then), else fetches."""
    job_id = resources.transcript_job_id(receipt.key)
    async with resources.redis.pipeline(transaction=False) as pipe:
        pipe.exists(in_progress_key_prefix + job_id)
        pipe.exists(job_key_prefix + job_id)
        running, waiting = await pipe.execute()
    if running:
        raise Retry(defer=min(float(attempt), FOLLOW_UP_WAIT_S))
    if waiting:
        await resources.redis.zadd(resources.settings.queue_name, {job_id: time.time_ns() // 1_000_000}, xx=True,
                                   lt=True)
        return "handed_over"
    return await _fetch_transcript(resources, receipt, attempt)


async def _unavailable(
    resources: Resources, cdr: Cdr, reason: str, hints: CallHints, attempt: int, state: bytes | None
) -> str:
    """`transcription_unavailable` once per call: a second reason is recorded in the log, not published."""
    if state is not None:
        log.info("transcript.unavailable_again", call_id=cdr.id, reason=reason, state=state.decode())
        return f"unavailable_again:{reason}"
    await deliver_all(resources, unavailable_event(cdr, reason, hints=hints, now=datetime.now(UTC)), attempt)
    await resources.redis.set(resources.transcript_state_key(str(cdr.id)), f"unavailable:{reason}",
                              ex=resources.settings.webhook_dedup_ttl)
    return f"unavailable:{reason}"
