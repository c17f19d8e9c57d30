"""Deliver: each event to every destination that wants it, each destination on its own schedule.

    route (workers/deliver/route.py) -> one delivery per destination -> sink.publish(event, idempotency_key)

A delivery's first attempt runs inside the job that made the event, for all its destinations at once
and each bounded by DELIVERY_INLINE_TIMEOUT: an event reaches the healthy destinations within
milliseconds, and a slow or dead destination cannot hold up the others. A destination that fails for a
while (`Transient`) gets a `deliver` job of its own, retried with the backoff of workers/retry.py until it
succeeds or gives up into the dead-letter stream; one that refuses the event (`Permanent`) is
dead-lettered at once. The idempotency key `event.id:destination` stays the same across attempts, so
sinks that can drop repeats do, and the others carry it for their consumers.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import msgspec

from contract import logs
from contract.events import CloudEvent, decode_event, encode_event
from contract.jobs import DELIVER
from workers.deliver.route import Destination, route
from workers.deliver.sinks.base import Sink, idempotency_key
from workers.retry import CallError, Permanent, Transient

if TYPE_CHECKING:
    from workers.context import Resources

log = logs.get("workers.deliver.delivery")


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A `deliver` job's argument: one event for one destination."""

    destination: str
    call_id: str
    event_id: str
    event: bytes  # the CloudEvents JSON, exactly as the first attempt had it
    first_at_ms: int


async def deliver_all(resources: Resources, event: CloudEvent, attempt: int) -> None:
    """First attempts, concurrently, to every destination that wants `event`."""
    wanted = route(event, resources.destinations)
    if not wanted:
        log.info("event.unrouted", call_id=event.subject, event_id=event.id, type=event.type)
        return
    body = encode_event(event)
    await asyncio.gather(*(_first_attempt(resources, event, body, d, attempt) for d in wanted))


async def _first_attempt(
    resources: Resources, event: CloudEvent, body: bytes, destination: Destination, attempt: int
) -> None:
    delivery = Delivery(destination=destination.name, call_id=event.subject, event_id=event.id, event=body,
                        first_at_ms=time.time_ns() // 1_000_000)
    try:
        async with asyncio.timeout(resources.settings.delivery_inline_timeout):
            await publish(resources, resources.sinks[destination.name], event, attempt)
    except Permanent as e:
        await resources.dead_letter(DELIVER, encode_delivery(delivery), event.subject, e.reason, 1)
    except (CallError, TimeoutError) as e:
        error = e if isinstance(e, CallError) else Transient(f"{destination.name}: no answer within the inline wait")
        await _later(resources, delivery, error)


async def _later(resources: Resources, delivery: Delivery, error: CallError) -> None:
    """Hands a delivery to its own job, due when the retry policy says."""
    decision = resources.policy.decide(error, 1)
    job_id = f"{resources.settings.key_prefix}deliver:{delivery.event_id}:{delivery.destination}"
    delay = decision.delay if decision.retry else 1.0
    await resources.follow_ups.enqueue(DELIVER, delivery, job_id=job_id, defer_s=delay)
    log.warning("delivery.deferred", call_id=delivery.call_id, event_id=delivery.event_id,
                sink=delivery.destination, reason=error.reason)


async def publish(resources: Resources, sink: Sink, event: CloudEvent, attempt: int) -> None:
    """The one place an event meets a sink; counted and logged per sink."""
    await sink.publish(event, idempotency_key=idempotency_key(event, sink.name))
    resources.metrics.events.labels(sink.name, event.type).inc()
    log.info("event.published", call_id=event.subject, event_id=event.id, type=event.type, sink=sink.name,
             attempt=attempt)


async def retry_delivery(resources: Resources, delivery: Delivery, attempt: int) -> str:
    """The `deliver` job's step: one more attempt; failures go back to the policy (workers/process.run)."""
    sink = resources.sinks.get(delivery.destination)
    if sink is None:
        raise Permanent(f"destination {delivery.destination!r} is no longer configured")
    await publish(resources, sink, decode_event(delivery.event), attempt)
    return "published"


def encode_delivery(delivery: Delivery) -> bytes:
    return msgspec.msgpack.encode(delivery)
