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
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import msgspec
from arq.constants import job_key_prefix

from contract import logs
from contract.events import CloudEvent, decode_event, encode_event
from contract.jobs import DELIVER
from workers.deliver.ledger import Ledger
from workers.deliver.route import Destination, route
from workers.deliver.sinks.base import Sink, idempotency_key
from workers.retry import CallError, Permanent, Transient

if TYPE_CHECKING:
    from workers.context import Resources

log = logs.get("workers.deliver.delivery")

ATTEMPT_LIMIT_S = 40.0  # one attempt's bound: a sink's connect, declare and publish at 10 s each, and slack
LEASE_S = ATTEMPT_LIMIT_S + 5.0  # no other attempt starts while one may still land

_in_flight: set[asyncio.Task[None]] = set()  # first attempts outliving their job; kept until they end


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A `deliver` job's argument: one event for one destination."""

    destination: str
    call_id: str
    event_id: str
    event: bytes  # the CloudEvents JSON, exactly as the first attempt had it
    first_at_ms: int


class InFlight(Transient):
    """Another attempt of this delivery is under way: wait for its outcome (`retry_after`: its lease)."""


def ledger(resources: Resources) -> Ledger:
    return Ledger(resources.redis, resources.settings.key_prefix,
                  delivered_ttl_s=resources.settings.webhook_dedup_ttl, lease_s=LEASE_S)


def job_id(resources: Resources, delivery: Delivery) -> str:
    """One `deliver` job per event and destination: `{prefix}deliver:{event_id}:{destination}`."""
    return f"{resources.settings.key_prefix}deliver:{delivery.event_id}:{delivery.destination}"


async def deliver_all(resources: Resources, event: CloudEvent, attempt: int) -> None:
    """First attempts, concurrently, to every destination that wants `event`."""
    wanted = route(event, resources.destinations)
    if not wanted:
        log.info("event.unrouted", call_id=event.subject, event_id=event.id, type=event.type)
        return
    body = encode_event(event)
    await asyncio.gather(*(_first_attempt(resources, event, body, d, attempt) for d in wanted))


async def attempt_once(resources: Resources, sink: Sink, event: CloudEvent, attempt: int) -> str:
    """One attempt: "published", "delivered_before", or a CallError (InFlight while another runs)."""
    book = ledger(resources)
    claim = await book.claim(event.id, sink.name)
    if claim.delivered:
        log.info("event.delivered_before", call_id=event.subject, event_id=event.id, sink=sink.name)
        return "delivered_before"
    if claim.busy_ms:
        raise InFlight(f"{sink.name}: another attempt is in flight", claim.busy_ms / 1000)
    try:
        async with asyncio.timeout(ATTEMPT_LIMIT_S):
            await publish(resources, sink, event, attempt)
    except CallError:
        await book.settle(claim, delivered=False)
        raise
    except TimeoutError as e:  # its outcome is unknown: the lease stays until it runs out
        raise Transient(f"{sink.name}: no outcome within {ATTEMPT_LIMIT_S:.0f}s") from e
    await book.settle(claim, delivered=True)
    return "published"


async def _first_attempt(
    resources: Resources, event: CloudEvent, body: bytes, destination: Destination, attempt: int
) -> None:
    delivery = Delivery(destination=destination.name, call_id=event.subject, event_id=event.id, event=body,
                        first_at_ms=time.time_ns() // 1_000_000)
    task = asyncio.create_task(_attempt(resources, delivery, event, attempt))
    done, _ = await asyncio.wait({task}, timeout=resources.settings.delivery_inline_timeout)  # never cancels it
    if done:
        await _conclude(resources, delivery, task, handed_over=False)
        return
    await resources.follow_ups.enqueue(DELIVER, delivery, job_id=job_id(resources, delivery), defer_s=LEASE_S)
    follow = asyncio.create_task(_follow(resources, delivery, task))
    _in_flight.add(follow)
    follow.add_done_callback(_in_flight.discard)
    log.info("delivery.in_background", call_id=delivery.call_id, event_id=delivery.event_id, sink=destination.name)


async def _attempt(resources: Resources, delivery: Delivery, event: CloudEvent, attempt: int) -> None:
    await attempt_once(resources, resources.sinks[delivery.destination], event, attempt)


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
    """Hands a delivery to its own job, due when the retry policy says (sooner, if it is queued already)."""
    decision = resources.policy.decide(error, 1)
    delay = decision.delay if decision.retry else 1.0
    jid = job_id(resources, delivery)
    if not await resources.follow_ups.enqueue(DELIVER, delivery, job_id=jid, defer_s=delay):
        due_ms = time.time_ns() // 1_000_000 + int(delay * 1000)
        await resources.redis.zadd(resources.settings.queue_name, {jid: due_ms}, xx=True, lt=True)
    log.warning("delivery.deferred", call_id=delivery.call_id, event_id=delivery.event_id,
                sink=delivery.destination, reason=error.reason)


async def _withdraw(resources: Resources, delivery: Delivery) -> None:
    """Removes the waiting `deliver` job: the first attempt settled the delivery after all."""
    jid = job_id(resources, delivery)
    async with resources.redis.pipeline(transaction=True) as pipe:
        pipe.zrem(resources.settings.queue_name, jid)
        pipe.delete(job_key_prefix + jid)
        await pipe.execute()


async def settle_in_flight(timeout_s: float) -> None:
    """Waits (at most `timeout_s`) for first attempts still running in the background; for shutdown."""
    if _in_flight:
        await asyncio.wait(set(_in_flight), timeout=timeout_s)


async def keep_delivered(resources: Resources, call_id: str) -> None:
    """Before a call's job is dead-lettered: keep its delivered marks until the replay, however late."""
    await ledger(resources).keep(call_id, [d.name for d in resources.destinations])


async def publish(resources: Resources, sink: Sink, event: CloudEvent, attempt: int) -> None:
    """The one place an event meets a sink; counted and logged per sink."""
    await sink.publish(event, idempotency_key=idempotency_key(event, sink.name))
    resources.metrics.events.labels(sink.name, event.type).inc()
    log.info("event.published", call_id=event.subject, event_id=event.id, type=event.type, sink=sink.name,
             attempt=attempt)


async def retry_delivery(resources: Resources, delivery: Delivery, attempt: int) -> str:
    """The `deliver` job's step: one more attempt; failures (CallErrors) go back to the policy (process.run)."""
    sink = resources.sinks.get(delivery.destination)
    if sink is None:
        raise Permanent(f"destination {delivery.destination!r} is no longer configured")
    return await attempt_once(resources, sink, decode_event(delivery.event), attempt)


def encode_delivery(delivery: Delivery) -> bytes:
    return msgspec.msgpack.encode(delivery)
