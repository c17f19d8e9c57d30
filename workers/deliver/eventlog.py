"""The event log: every event as first built, kept EVENT_LOG_RETENTION (7 days) for `wavix-events replay`.

    {prefix}eventlog    a Redis Stream; entry id = when the event was built (ms), fields `id`, `type`, `event`

A destination that lost data (a consumer's bad deploy, a restored backup) asks for what it was sent since a
time; the log answers with the events exactly as they were, same ids, so consumers that already have one drop
it. Written once per event build (process_call and fetch_transcript), before routing, in the round trip's
own XADD whose `MINID ~` trims entries older than the retention as it goes (no sweeper). A job re-run writes
its event again: `read` keeps the first entry of each id.

Size: one entry per event, ~2 KB (the event JSON); 100 000 calls a day with transcripts for half is about
150 000 events, 300 MB a day, 2 GB for 7 days: set EVENT_LOG_RETENTION to what Redis can hold (0: no log).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from contract.events import CloudEvent

_PAGE = 500


def key(prefix: str) -> str:
    return f"{prefix}eventlog"


async def append(redis: Redis, prefix: str, event: CloudEvent, body: bytes, *, retention_s: int) -> None:
    """Logs `event` (its JSON `body`) and trims what is older than `retention_s` (0: no log)."""
    if retention_s <= 0:
        return
    horizon_ms = int((time.time() - retention_s) * 1000)  # the worker's clock: seconds of skew do not matter here
    await redis.xadd(key(prefix), {"id": event.id, "type": event.type, "event": body},
                     minid=f"{max(horizon_ms, 0)}", approximate=True)


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
