"""The event log: every event as first built, kept EVENT_LOG_RETENTION (7 days) for `wavix-events replay`.

    {prefix}eventlog    a Redis Stream; entry id = when the event was built (ms), fields `id`, `type`, `event`
    {prefix}eventlog:first:{event_id}    the entry id of the event's first build, as long as the log keeps it

A destination that lost data (a consumer's bad deploy, a restored backup) asks for what it was sent since a
time; the log answers with the events exactly as they were, same ids, so consumers that already have one drop
it. Written once per event build (process_call and fetch_transcript), inside the script that claims the event's
first attempts (workers/deliver/ledger.py: no round trip of its own; an unrouted event gets its own XADD), by
an XADD whose `MINID ~` trims entries older than the retention as it goes (no sweeper).

First build wins. A job re-run (a worker killed after a send, a retry) builds its event again, and a webhook
that came in between can change it (an on-call event saying "machine"). The claim script then finds the
event's first entry (`first`) and answers its JSON instead of logging a second one, and the job delivers that:
a destination never gets two bodies under one event id (`webhook-id`), so a consumer that drops repeats
loses nothing (the chaos run's `redelivered_changed`). With EVENT_LOG_RETENTION 0, or past it, a re-run's
event is delivered as built. `read` still keeps the first entry of each id (an unrouted event's re-run logs
again).

Size: one entry per event, ~2 KB (the event JSON); 100 000 calls a day with transcripts for half is about
150 000 events, 300 MB a day, 2 GB for 7 days: set EVENT_LOG_RETENTION to what Redis can hold (0: no log).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from contract.events import CloudEvent

_PAGE = 500


def key(prefix: str) -> str:
    return f"{prefix}eventlog"


@dataclass(frozen=True)
class LogEntry:
    """One event's entry: `XADD key MINID ~ min_id * id .. type .. event ..`."""

    key: str
    first: str  # the first entry's id is kept here (`first_key`)
    min_id: str
    event_id: str
    event_type: str
    body: bytes
    retention_s: int

    def args(self) -> tuple[str, str, str, bytes, int]:
        return self.min_id, self.event_id, self.event_type, self.body, self.retention_s


def first_key(prefix: str, event_id: str) -> str:
    return f"{prefix}eventlog:first:{event_id}"


def entry(prefix: str, event: CloudEvent, body: bytes, *, retention_s: int) -> LogEntry | None:
    """`event`'s entry (its JSON `body`), trimming what is older than `retention_s`; None: no log (0).
    The job writes it in its delivery ledger's claim script (workers/deliver/ledger.py), no round trip of its own."""
    if retention_s <= 0:
        return None
    horizon_ms = int((time.time() - retention_s) * 1000)  # the worker's clock: seconds of skew do not matter here
    return LogEntry(key(prefix), first_key(prefix, event.id), f"{max(horizon_ms, 0)}", event.id, event.type, body,
                    retention_s)


async def append(redis: Redis, prefix: str, event: CloudEvent, body: bytes, *, retention_s: int) -> None:
    """Logs `event` on its own (an unrouted event: no claim to ride on); nothing when `retention_s` is 0."""
    log = entry(prefix, event, body, retention_s=retention_s)
    if log is not None:
        await redis.xadd(log.key, {"id": log.event_id, "type": log.event_type, "event": log.body}, minid=log.min_id,
                         approximate=True)


async def read(redis: Redis, prefix: str, *, since_ms: int, until_ms: int | None = None,
               types: tuple[str, ...] = ()) -> AsyncIterator[tuple[int, str, bytes]]:
    """(logged at ms, event id, event JSON) of each event logged in [since, until], oldest first, each id once;
    `types` are globs on the event type."""
    seen: set[str] = set()
    start, end = f"{since_ms}-0", "+" if until_ms is None else f"{until_ms}-18446744073709551615"
    while True:
        page = await redis.xrange(key(prefix), min=start, max=end, count=_PAGE)
        for entry_id, fields in page:
            event_id, event_type = fields[b"id"].decode(), fields[b"type"].decode()
            if event_id in seen or (types and not any(fnmatch.fnmatchcase(event_type, t) for t in types)):
                continue
            seen.add(event_id)
            yield int(entry_id.split(b"-")[0]), event_id, fields[b"event"]
        if len(page) < _PAGE:
            return
        start = "(" + page[-1][0].decode()
