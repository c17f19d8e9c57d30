"""Ops events: each pipeline incident told to the destinations that subscribe, once when it opens, once when it ends.

    incidents.announce, every pass of every worker: the open incidents (opened) and the closed ones (resolved)
      told already? ({prefix}incidents:told, field "<incident id>:<phase>", one HGETALL a pass) -> nothing
      the event, `wavix.ops.<kind>.<phase>` (contract/ops.py), id = events.event_id(incident id, type)
      -> route (workers/deliver/route.py: only destinations whose `types` name ops events), less the incident's
         own destination
      -> one `deliver` job per destination (workers/deliver/jobs.py's requeue, job id deliver:<event id>:<name>)
      -> told (HSET)

The normal delivery takes it from there: retries on the destination's schedule, the ledger, dead letters, pause.
Once each, however many workers check: a worker that dies between queueing and marking leaves the incident
untold, and the next pass (any worker's) queues it again; so may two workers telling at once. Neither makes a
second delivery: while the first job waits its id refuses another, and once it ran the ledger's delivered mark
(`<event id>:<destination>`, the same idempotency key the sink gets) turns the second into "delivered before".
An incident that opened and ended between two passes is told both, opened first.

Never to its own destination: an event about destination X (failing, paused, dead-lettering) is not sent to X.
X could not take it, and each failed try would feed X's own incidents (its dead letters open another incident,
whose event would go to X again): a loop of events about the events. The other subscribers hear of X.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from redis.asyncio import Redis

from contract import logs
from contract.events import OPS_EVENTS, CloudEvent, dataschema_for, encode_event, event_id
from contract.ops import PipelineIncident, ops_type
from workers.deliver.jobs import Delivery, now_ms, requeue
from workers.deliver.route import Destination, route

log = logs.get("workers.alert.ops")


@dataclass(frozen=True)
class Teller:
    """Where ops events go: the worker's current destinations, and the queue their `deliver` jobs join."""

    destinations: Callable[[], Sequence[Destination]]
    queue: str
    expiry_s: int


def told_key(prefix: str) -> str:
    return f"{prefix}incidents:told"


def phase_of(data: PipelineIncident) -> str:
    return "resolved" if data.resolved_at is not None else "opened"


def event_of(data: PipelineIncident) -> CloudEvent:
    """The incident's event for its phase; the same id (and body) wherever and however often it is formed."""
    kind = ops_type(data.kind, phase_of(data))
    return cast(CloudEvent, OPS_EVENTS[kind](id=event_id(data.incident_id, kind), subject=data.incident_id,
                            time=data.resolved_at or data.opened_at, dataschema=dataschema_for(PipelineIncident),
                            data=data))


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def tell(redis: Redis, prefix: str, teller: Teller, pending: Sequence[PipelineIncident]) -> int:
    """Queues each untold phase of `pending` (in order) to its subscribers and marks it told; returns how many
    deliveries were queued."""
    told = {f.decode() for f in await redis.hkeys(told_key(prefix))}  # type: ignore[misc]
    queued = 0
    for data in pending:
        field = f"{data.incident_id}:{phase_of(data)}"
        if field in told:
            continue
        event = event_of(data)
        body = encode_event(event)
        wanted = [d.name for d in route(event, teller.destinations()) if d.name != data.destination]
        deliveries = [Delivery(destination=name, call_id=data.incident_id, event_id=event.id, event=body,
                               first_at_ms=now_ms(), tries=0) for name in wanted]
        if deliveries:
            queued += await requeue(redis, deliveries, prefix=prefix, queue=teller.queue, expiry_s=teller.expiry_s)
        await redis.hset(told_key(prefix), field, str(now_ms()))  # type: ignore[misc]
        log.info("ops_event.told", event_id=event.id, type=event.type, incident=data.incident_id, to=wanted)
    return queued


async def forget(redis: Redis, prefix: str, incident_id: str) -> None:
    """An incident forgotten (a day after it closed): its marks go with it."""
    await redis.hdel(told_key(prefix), f"{incident_id}:opened", f"{incident_id}:resolved")  # type: ignore[misc]
