"""Deliver: each event to every destination that wants it, each destination on its own schedule.

    route (workers/deliver/route.py) -> one delivery per destination -> attempt -> sink.publish(event, key)

Every attempt goes through `attempt`, which asks the ledger (workers/deliver/ledger.py) first: a
destination that has the event already gets nothing (a re-run job, a replayed dead letter), and while one
attempt is in flight no other starts (a `deliver` job finding one waits for its outcome). The mark is set
only once the destination confirmed.

A delivery's first attempt runs inside the job that made the event, for all its destinations at once. The
job waits for it DELIVERY_INLINE_TIMEOUT, so a slow destination cannot hold the job up; but a request that
is out may still land (a webhook answering in 3 s got every event twice when the attempt was abandoned at
2 s and a `deliver` job sent it again), so an attempt is never abandoned: it goes on in the background to
its own end (at most ATTEMPT_LIMIT_S, past every sink's timeouts), and only its real failure hands the
delivery to a `deliver` job. Meanwhile that job already waits in the queue, due when the attempt's lease
runs out, in case this worker dies first; the attempt's outcome withdraws it (delivered, dead-lettered) or
brings it forward (a Transient). The `deliver` job is retried with the backoff of workers/retry.py until it
succeeds or gives up into the dead-letter stream; a refusal (`Permanent`) is dead-lettered at once. The
idempotency key `event.id:destination` is the same on every attempt, so sinks that can drop repeats do.

Each destination retries on its own schedule (`retry:` in the routing file, workers/retry.py's `Schedule`:
by default 8 tries over ~28 hours), so one that is down never delays the others: their first tries run side
by side, and its retries are its own jobs. Tries the destination never saw are not counted: a try that finds
the destination paused parks the delivery (workers/deliver/control.py), one over its `max_per_second`
(workers/deliver/ratelimit.py) or behind another attempt's lease comes back later without using a try (the
job's arq try counter is given back). Every event is logged once built (workers/deliver/eventlog.py) for
`wavix-events replay`, whose deliveries are sent even where the ledger says "delivered".
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import msgspec
from arq import Retry
from arq.constants import job_key_prefix, retry_key_prefix

from contract import logs
from contract.events import CloudEvent, decode_event, encode_event
from contract.jobs import DELIVER
from workers import deadletter
from workers.deliver import attempts, control, eventlog, inflight
from workers.deliver.jobs import Delivery, encode_delivery, now_ms
from workers.deliver.jobs import job_id as _job_id
from workers.deliver.ledger import ATTEMPT_LIMIT_S, LEASE_S, Claim
from workers.deliver.route import Destination, route
from workers.deliver.sinks.base import Sink, idempotency_key
from workers.operate import record
from workers.retry import CallError, GiveUp, Permanent, Schedule, Transient

if TYPE_CHECKING:
    from workers.runtime.context import Resources

__all__ = ["Delivery", "deliver_all", "encode_delivery", "keep_delivered", "retry_delivery"]

log = logs.get("workers.deliver.delivery")

class Uncounted(Transient):
    """A try that did not reach the destination; it comes back after `retry_after` without using a try."""


class InFlight(Uncounted):
    """Another attempt of this delivery is under way: wait for its outcome (`retry_after`: its lease)."""


class Throttled(Uncounted):
    """The destination's `max_per_second` has no slot soon: come back when one is (`retry_after`)."""


def job_id(resources: Resources, delivery: Delivery) -> str:
    """One `deliver` job per event and destination: `{prefix}deliver:{event_id}:{destination}`."""
    return _job_id(resources.settings.key_prefix, delivery)


def destination(resources: Resources, name: str) -> Destination | None:
    return next((d for d in resources.destinations if d.name == name), None)


async def deliver_all(resources: Resources, event: CloudEvent, attempt: int) -> None:
    """Logs `event`, then first attempts, concurrently, to every destination that wants it. The log entry and
    the claims of every destination with a sink are one script call (workers/deliver/ledger.py)."""
    body = encode_event(event)
    settings = resources.settings
    wanted = route(event, resources.destinations)
    if not wanted:
        await eventlog.append(resources.redis, settings.key_prefix, event, body,
                              retention_s=settings.event_log_retention)
        log.info("event.unrouted", call_id=event.subject, event_id=event.id, type=event.type)
        return
    entry = eventlog.entry(settings.key_prefix, event, body, retention_s=settings.event_log_retention)
    ready = [d for d in wanted if d.name in resources.sinks]  # one without a sink is refused in attempt_once
    claims, first = await resources.ledger.claim_all(event.id, [(d.name, d.max_per_second) for d in ready], log=entry)
    if first is not None and first != body:  # a re-run rebuilt it differently: send the first build, as it was
        log.info("event.first_build_kept", call_id=event.subject, event_id=event.id)
        event, body = decode_event(first), first
    made = dict(zip([d.name for d in ready], claims, strict=True))
    await asyncio.gather(*(_first_attempt(resources, event, body, d, made.get(d.name)) for d in wanted))


async def attempt_once(resources: Resources, delivery: Delivery, event: CloudEvent, claim: Claim | None = None) -> str:
    """Try number `delivery.tries + 1`: "published", "delivered_before", "parked", or a CallError. `claim`: the
    ledger's answer for this try when it was asked already (deliver_all's one call for all destinations)."""
    name, book = delivery.destination, resources.ledger
    sink, where = resources.sinks.get(name), destination(resources, name)
    if sink is None or where is None:
        raise Permanent(f"destination {name!r} is no longer configured")
    if claim is None:
        claim = await book.claim(event.id, name, force=delivery.replay, max_per_second=where.max_per_second)
    if claim.delivered:
        log.info("event.delivered_before", call_id=event.subject, event_id=event.id, sink=name)
        return "delivered_before"
    if claim.paused:
        if not await control.park(resources.redis, resources.settings.key_prefix, delivery):
            raise InFlight(f"{name}: resumed while parking", 0.05)
        resources.metrics.deliveries.labels(name, "parked").inc()
        return "parked"
    if claim.busy_ms:
        raise InFlight(f"{name}: another attempt is in flight", claim.busy_ms / 1000)
    if claim.throttled_ms:
        raise Throttled(f"{name}: over max_per_second", claim.throttled_ms / 1000)
    if claim.wait_ms:
        await asyncio.sleep(claim.wait_ms / 1000)
    heard = attempts.listen()  # what the sink hears back, for the console (workers/deliver/attempts.py)
    try:
        with book.offer(claim, event=event.id, first_at_ms=delivery.first_at_ms) as offer:  # a stream on this Redis
            async with asyncio.timeout(ATTEMPT_LIMIT_S):
                await publish(resources, sink, event, delivery.tries + 1)
    except CallError as e:
        await book.settle(claim, delivered=False, event=event.id, reason=e.reason, first_at_ms=delivery.first_at_ms)
        await _noted(resources, delivery, event, heard, e)
        raise
    except TimeoutError as e:  # its outcome is unknown: the lease stays until it runs out
        error = Transient(f"{name}: no outcome within {ATTEMPT_LIMIT_S:.0f}s")
        await _noted(resources, delivery, event, heard, error)
        raise error from e
    if offer is None or not offer.taken:  # taken: settled in the sink's own script (workers/deliver/ledger.py)
        await book.settle(claim, delivered=True, event=event.id, first_at_ms=delivery.first_at_ms)  # rides outages
    await _noted(resources, delivery, event, heard, None)
    resources.metrics.deliveries.labels(name, "delivered").inc()
    resources.metrics.delivery_seconds.labels(name).observe(max(now_ms() - delivery.first_at_ms, 0) / 1000)
    return "published"


async def _noted(resources: Resources, delivery: Delivery, event: CloudEvent, heard: attempts.Heard,
                 error: CallError | None) -> None:
    """The try's record for the console: outcome, HTTP status, the response's first KiB; the event on a failure."""
    outcome = "delivered" if error is None else "permanent" if isinstance(error, Permanent) else "transient"
    attempt = attempts.Attempt(
        at_ms=heard.at_ms, destination=delivery.destination, event_id=event.id, event_type=event.type,
        attempt=delivery.tries + 1, outcome=outcome, ok=error is None, status=heard.status, response=heard.response,
        request=heard.request, reason=attempts.scrub_text(error.reason[:300]) if error else "",
        ms=round((time.perf_counter() - heard.started) * 1000, 2))
    settings, notes = resources.settings, record.current()
    if notes is not None and notes.hold(attempts.parts(settings.key_prefix, settings.webhook_dedup_ttl, attempt,
                                                       delivery.event)):
        return  # written with the job's record at its end: no round trip of its own (workers/operate/record.py)
    await attempts.write(resources.batch, settings.key_prefix, settings.webhook_dedup_ttl, attempt, delivery.event)


async def _first_attempt(resources: Resources, event: CloudEvent, body: bytes, where: Destination,
                         claim: Claim | None) -> None:
    delivery = Delivery(destination=where.name, call_id=event.subject, event_id=event.id, event=body,
                        first_at_ms=now_ms())
    task = asyncio.create_task(_attempt(resources, msgspec.structs.replace(delivery, tries=0), event, claim))
    done, _ = await asyncio.wait({task}, timeout=resources.settings.delivery_inline_timeout)  # never cancels it
    if done:
        await _conclude(resources, delivery, task, handed_over=False)
        return
    await resources.follow_ups.enqueue(DELIVER, delivery, job_id=job_id(resources, delivery), defer_s=LEASE_S)
    follow = asyncio.create_task(_follow(resources, delivery, task))
    inflight.keep(follow)
    log.info("delivery.in_background", call_id=delivery.call_id, event_id=delivery.event_id, sink=where.name)


async def _attempt(resources: Resources, delivery: Delivery, event: CloudEvent, claim: Claim | None) -> None:
    await attempt_once(resources, delivery, event, claim)


async def _follow(resources: Resources, delivery: Delivery, task: asyncio.Task[None]) -> None:
    """Waits for a first attempt that outlived its job and acts on its outcome."""
    await asyncio.wait({task})  # its exception, if any, is read in _conclude
    try:
        await _conclude(resources, delivery, task, handed_over=True)
    except Exception:  # Redis down, a bug: the queued job takes over when the lease runs out
        log.error("delivery.follow_failed", exc_info=True, call_id=delivery.call_id, event_id=delivery.event_id)


async def _conclude(resources: Resources, delivery: Delivery, task: asyncio.Task[None], *, handed_over: bool) -> None:
    """Acts on a first attempt's outcome; `handed_over`: its `deliver` job is queued already."""
    try:
        task.result()
    except Permanent as e:
        await resources.dead_letter(DELIVER, encode_delivery(delivery), delivery.call_id, e.reason, 1)
    except CallError as e:
        await _later(resources, delivery, e)
        return
    if handed_over:
        await _withdraw(resources, delivery)


async def _later(resources: Resources, delivery: Delivery, error: CallError) -> None:
    """Hands a delivery to its own job, due when its schedule says (sooner, if it is queued already)."""
    if isinstance(error, Uncounted):
        delivery, delay = msgspec.structs.replace(delivery, tries=0), error.retry_after or 0.0
    else:
        decision = _schedule(resources, delivery.destination).decide(error, 1, 0.0, resources.policy.rng)
        delay = decision.delay if decision.retry else 1.0
        resources.metrics.deliveries.labels(delivery.destination, "retried").inc()
    jid = job_id(resources, delivery)
    if not await resources.follow_ups.enqueue(DELIVER, delivery, job_id=jid, defer_s=delay):
        due_ms = now_ms() + int(delay * 1000)
        await resources.redis.zadd(resources.settings.queue_name, {jid: due_ms}, xx=True, lt=True)
    log.warning("delivery.deferred", call_id=delivery.call_id, event_id=delivery.event_id,
                sink=delivery.destination, reason=error.reason, delay_s=round(delay, 1))


def _schedule(resources: Resources, name: str) -> Schedule:
    where = destination(resources, name)
    return where.retry if where is not None else Schedule()


async def _withdraw(resources: Resources, delivery: Delivery) -> None:
    """Removes the waiting `deliver` job: the first attempt settled the delivery after all."""
    jid = job_id(resources, delivery)
    async with resources.redis.pipeline(transaction=True) as pipe:
        pipe.zrem(resources.settings.queue_name, jid)
        pipe.delete(job_key_prefix + jid)
        await pipe.execute()


async def keep_delivered(resources: Resources, call_id: str) -> None:
    """Before a call's job is dead-lettered: keep its delivered marks as long as the letter may be replayed."""
    await resources.ledger.keep(call_id, [d.name for d in resources.destinations],
                                ttl_s=deadletter.marks_kept_s(resources.settings.dead_letter_retention))


async def publish(resources: Resources, sink: Sink, event: CloudEvent, attempt: int) -> None:
    """The one place an event meets a sink; counted and logged per sink."""
    await sink.publish(event, idempotency_key=idempotency_key(event, sink.name))
    resources.metrics.events.labels(sink.name, event.type).inc()
    log.info("event.published", call_id=event.subject, event_id=event.id, type=event.type, sink=sink.name,
             attempt=attempt)


async def retry_delivery(resources: Resources, delivery: Delivery, attempt: int) -> str:
    """The `deliver` job's step: one more try. Its schedule decides a failure: `arq.Retry` or `GiveUp` (which
    workers/process.py dead-letters); a try that never reached the destination gives its arq try back."""
    current = msgspec.structs.replace(delivery, tries=delivery.tries + attempt - 1)
    try:
        return await attempt_once(resources, current, decode_event(delivery.event))
    except Uncounted as e:
        await resources.redis.decr(retry_key_prefix + job_id(resources, delivery))
        raise Retry(defer=max(e.retry_after or 0.0, 0.01)) from e
    except CallError as e:
        failed, age = current.tries + 1, time.time() - delivery.first_at_ms / 1000
        decision = _schedule(resources, delivery.destination).decide(e, failed, age, resources.policy.rng)
        if not decision.retry:
            raise GiveUp(e, decision.reason, failed) from e
        resources.metrics.deliveries.labels(delivery.destination, "retried").inc()
        log.warning("delivery.retry", call_id=delivery.call_id, event_id=delivery.event_id, sink=delivery.destination,
                    reason=decision.reason)
        raise Retry(defer=decision.delay) from e
