"""The operator's commands for destinations: `destinations`, `pause`, `resume`, `replay` (wavix_events/cli.py).

    wavix-events destinations [--json]              each destination's health (workers/deliver/report.py)
    wavix-events pause crm / resume crm             hold a destination's deliveries, then send them in order
    wavix-events replay --destination crm --since 2026-06-30T09:00Z [--until ...] [--type 'wavix.call.*']

Names are checked against the routing file (SINKS_CONFIG) first, so a typo never pauses a destination that
does not exist. Replay reads the event log (workers/deliver/eventlog.py: EVENT_LOG_RETENTION, 7 days by
default), keeps what the destination's filter wants, and queues one `deliver` job per event, oldest first,
marked as a replay: it is sent even where the ledger says delivered, with the same event id and idempotency
key, so consumers drop what they already have. (A Redis Stream destination drops it itself: its publish mark,
WEBHOOK_DEDUP_TTL, answers for the sink.) Times are ISO 8601 (UTC unless an offset is given) or an age: `2h`.
`redeliver_failed` (the console's "Redeliver what failed since", console/destinations.py) is the other way:
only the logged events the ledger has no delivered mark for, sent as ordinary tries, their dead letters cleared.
Each queued replay is a `replay` step in its call's record and is counted apart on the console's overview
(workers/operate/record.py `replayed`); it never moves the call's own time, publish time or latency.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import msgspec
from arq.connections import ArqRedis
from redis.asyncio import Redis
from rich.console import Console

from contract import redisurl
from contract.events import CloudEvent, decode_event
from contract.record import Entry
from contract.settings import Settings
from workers.deadletter import DeadLetter
from workers.deliver import control, eventlog, health, report
from workers.deliver.jobs import Delivery, now_ms, requeued
from workers.deliver.route import Destination
from workers.operate import dlq, record
from workers.retry import parse_duration
from workers.runtime.context import destinations_for


class AdminError(ValueError):
    """An operator's command that cannot be done as asked (unknown destination, bad time)."""


def parse_time(text: str, now: float | None = None) -> int:
    """Unix ms from ISO 8601 (`2026-06-30T09:00Z`, naive = UTC) or an age before `now` (`90m`, `2h`, `1d`)."""
    try:
        return int(((now if now is not None else time.time()) - parse_duration(text)) * 1000)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as e:
        raise AdminError(f"not a time: {text!r} (use ISO 8601, e.g. 2026-06-30T09:00Z, or an age: 2h)") from e
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def named(settings: Settings, name: str) -> Destination:
    found = {d.name: d for d in destinations_for(settings)}
    if name not in found:
        raise AdminError(f"no destination {name!r} in the routing file; known: {', '.join(found)}")
    return found[name]


async def show(settings: Settings, redis: Redis, console: Console, *, as_json: bool = False) -> int:
    """Each destination's health: a table, a block each on a narrow console, or JSON (deliver/report.py)."""
    default = settings.destination_disable_after
    destinations = [replace(d, disable_after_s=d.disables_after(default)) for d in destinations_for(settings)]
    rows = await health.read(redis, settings.key_prefix, [d.name for d in destinations])
    if as_json:
        print(json.dumps(report.as_json(rows, destinations), indent=2))
    else:
        report.show(console, rows, destinations, now_ms())
    return 0


async def pause(settings: Settings, redis: Redis, name: str) -> str:
    named(settings, name)
    done = await control.pause(redis, settings.key_prefix, name)
    return f"{name}: paused" if done else f"{name}: was paused already"


async def resume(settings: Settings, redis: Redis, name: str) -> str:
    named(settings, name)
    released = await control.resume(redis, settings.key_prefix, name, queue=settings.queue_name,
                                    expiry_s=settings.job_expiry)
    return f"{name}: resumed; {released} parked deliveries queued, oldest first"


async def replay(settings: Settings, redis: Redis, name: str, *, since_ms: int, until_ms: int | None,
                 types: tuple[str, ...]) -> str:
    """Queues every logged event in [since, until] that `name` wants, oldest first, as a replay."""
    where = named(settings, name)
    if until_ms is not None and until_ms < since_ms:
        raise AdminError("--until is before --since")
    deliveries, types_of, start = [], {}, now_ms()
    async for event, body in wanted(settings, redis, where, since_ms=since_ms, until_ms=until_ms, types=types):
        types_of[event.id] = event.type
        deliveries.append(Delivery(destination=name, call_id=event.subject, event_id=event.id, event=body,
                                   first_at_ms=start, tries=0, replay=True))
    queued = await requeued(redis, deliveries, prefix=settings.key_prefix, queue=settings.queue_name,
                            expiry_s=settings.job_expiry)
    await record.replayed(redis, settings.key_prefix, "destination", [
        (d.call_id, Entry(at_ms=start, step="replay", what="destination", destination=name, event_id=d.event_id,
                          event_type=types_of[d.event_id])) for d in queued])
    kept = "" if len(queued) == len(deliveries) else f" ({len(deliveries) - len(queued)} already queued)"
    return f"{name}: {len(queued)} events queued for replay{kept}"


async def wanted(settings: Settings, redis: Redis, where: Destination, *, since_ms: int, until_ms: int | None,
                 types: tuple[str, ...]) -> AsyncIterator[tuple[CloudEvent, bytes]]:
    """Each logged event in [since, until] (of `types`) that `where`'s filter wants, oldest first, with its JSON."""
    async for _, _, body in eventlog.read(redis, settings.key_prefix, since_ms=since_ms, until_ms=until_ms,
                                          types=types):
        event = decode_event(body)
        if where.filter.matches(event):
            yield event, body


async def redeliver_failed(settings: Settings, redis: ArqRedis, name: str, *, since_ms: int, until_ms: int | None,
                           types: tuple[str, ...] = ()) -> str:
    """Queues the logged events since `since_ms` that `name` wants and has not got: no delivered mark in the
    ledger (workers/deliver/ledger.py). Not a replay: each try asks the ledger again, so nothing it has is sent.
    Their dead letters at `name` go (the event is back at work; a new failure writes a new one). A mark lives
    WEBHOOK_DEDUP_TTL: an event logged longer ago than that counts as not delivered."""
    where = named(settings, name)
    if until_ms is not None and until_ms < since_ms:
        raise AdminError("--until is before --since")
    logged, start = [], now_ms()
    async for event, body in wanted(settings, redis, where, since_ms=since_ms, until_ms=until_ms, types=types):
        logged.append(Delivery(destination=name, call_id=event.subject, event_id=event.id, event=body,
                               first_at_ms=start, tries=0))
    missing = []
    for i in range(0, len(logged), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for d in logged[i:i + 1000]:
                pipe.exists(f"{settings.key_prefix}delivered:{d.event_id}:{name}")
            missing += [d for d, there in zip(logged[i:i + 1000], await pipe.execute(), strict=True) if not there]
    queued = await requeued(redis, missing, prefix=settings.key_prefix, queue=settings.queue_name,
                            expiry_s=settings.job_expiry)
    back = {d.event_id for d in missing}
    theirs = dlq.Filters(destination=name, since_ms=since_ms)
    letters = [d for d in await dlq.select(redis, settings.dead_letter_stream, theirs, 10**6) if _event_of(d) in back]
    cleared = await dlq.delete(redis, settings.dead_letter_stream, letters) if letters else 0
    await record.replayed(redis, settings.key_prefix, "destination", [
        (d.call_id, Entry(at_ms=start, step="replay", what="redeliver", destination=name, event_id=d.event_id))
        for d in queued])
    waiting = "" if len(queued) == len(missing) else f", {len(missing) - len(queued)} already queued"
    return (f"{name}: {len(missing)} of {len(logged)} events since then not delivered there; {len(queued)} queued "
            f"for redelivery{waiting}; {cleared} dead letter(s) cleared")


def _event_of(letter: DeadLetter) -> str:
    try:
        return msgspec.msgpack.decode(letter.payload, type=Delivery).event_id
    except msgspec.DecodeError:
        return ""


async def main(settings: Settings, command: str, *, name: str = "", since: str = "", until: str = "",
               types: tuple[str, ...] = (), as_json: bool = False) -> int:
    """One CLI command against REDIS_URL; an impossible request is one line on stderr and exit 2."""
    redis = redisurl.client(settings.redis_url)
    try:
        if command == "destinations":
            return await show(settings, redis, Console(), as_json=as_json)
        if command == "pause":
            print(await pause(settings, redis, name))
        elif command == "resume":
            print(await resume(settings, redis, name))
        else:
            print(await replay(settings, redis, name, since_ms=parse_time(since),
                               until_ms=parse_time(until) if until else None, types=types))
        return 0
    except AdminError as e:
        print(f"wavix-events {command}: {e}", file=sys.stderr)
        return 2
    finally:
        await redisurl.close(redis)
