"""A call's delivery attempts: each try of each of its events at each destination (issue #23).

    GET /calls/{call_id}/deliveries    per event: its payload (secrets scrubbed), then every try kept: time,
                                       destination, try, outcome, HTTP status, ms, reason, the response body's
                                       first KiB and the request's headers (the signature masked)

The tries are workers/deliver/attempts.py's (written by the delivery step); a call's event ids follow from its
id (contract/events.event_id), so nothing else is read. The payload is the copy kept by a failed try, else the
event log's entry, looked for near the event's first try (the log is written in the same script as the first
claim, at most the rate limiter's wait before it: `LOOK_BACK_MS`). It is shown scrubbed again here
(`attempts.scrub_json`): secret-named fields masked, URLs without credentials or query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Template
from redis.asyncio import Redis

from console import trace
from console.web import page
from contract.events import event_id
from contract.settings import Settings
from workers.deliver import attempts, eventlog
from workers.deliver.ledger import EVENT_TYPES
from workers.deliver.ratelimit import MAX_SLEEP_S

LOOK_BACK_MS = int((MAX_SLEEP_S + 5) * 1000)
LOOK_AT = 5000  # event log entries read at most, looking for one payload


@dataclass
class EventTries:
    """One event of the call: its id and type, its payload as shown, and its tries, oldest first."""

    event_id: str
    event_type: str
    tries: list[attempts.Attempt] = field(default_factory=list)
    payload: str = ""


def shown(raw: bytes) -> str:
    """The event's JSON, scrubbed and indented; the bytes' length if it is not JSON."""
    try:
        return json.dumps(attempts.scrub_json(json.loads(raw)), indent=2)
    except ValueError:
        return f"({len(raw)} bytes, not JSON)"


async def logged(redis: Redis, prefix: str, wanted: str, first_try_ms: int) -> bytes:
    """The event log's copy of event `wanted`, looked for just before its first try; b"" if not found."""
    found = await redis.xrange(eventlog.key(prefix), min=f"{first_try_ms - LOOK_BACK_MS}-0",
                               max=f"{first_try_ms + 1000}-18446744073709551615", count=LOOK_AT)
    return next((fields[b"event"] for _, fields in found if fields.get(b"id", b"").decode() == wanted), b"")


async def read(redis: Redis, prefix: str, call_id: str) -> list[EventTries]:
    """The call's events that have tries kept, in event order (completed, transcribed, unavailable)."""
    ids = {event_id(call_id, t): t for t in EVENT_TYPES}
    async with redis.pipeline(transaction=False) as pipe:
        for i in ids:
            pipe.lrange(attempts.attempts_key(prefix, i), 0, -1)
            pipe.get(attempts.event_key(prefix, i))
        answers = await pipe.execute()
    out = []
    for n, (i, kind) in enumerate(ids.items()):
        raw, kept = answers[2 * n], answers[2 * n + 1]
        if not raw:
            continue
        tries = [attempts.decode_attempt(r) for r in raw]
        payload = kept or await logged(redis, prefix, i, tries[0].at_ms)
        out.append(EventTries(i, kind, tries, shown(payload) if payload else ""))
    return out


@get("/calls/{call_id:str}/deliveries")
async def deliveries_page(request: Request[Any, Any, Any], call_id: FromPath[str]) -> Template:
    settings: Settings = request.app.state.settings
    found = await read(request.app.state.redis, settings.key_prefix, call_id)
    return page("deliveries.html", request, call_id=call_id, events=found, clock=trace.clock)
