"""Search: find a call by its id, by one of its events' ids, or by a phone number (issue #23).

    GET /search?q=...    the box in every page's header; one exact hit opens the call's page (303), several
                         are listed (paginated), none says what was looked through

How a query is read, in this order:
    a call id            the call's record, webhooks or summary exists (one pipelined EXISTS round trip)
    an event id          a UUID: each indexed call's event ids are computed (contract/events.event_id is uuid5
                         of call id and type, so nothing has to be stored), then the dead letters' deliveries
                         and the newest `LOG_SCAN` entries of the event log (events of calls never indexed)
    a phone number       `+`, digits, spaces, dots, dashes, brackets, at least 3 digits: the summaries whose
                         from or to number contains those digits
    anything else        part of a call id
The index is read newest first, at most `SCAN` calls (summaries in MGETs of 1000): a search looks through the
calls the console can list (WEBHOOK_DEDUP_TTL), bounded so that one search costs at most a few round trips.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromQuery
from litestar.response import Redirect
from redis.asyncio import Redis

from console import charts, data, paging, trace
from console.web import Form, PageNumber, page
from contract.events import COMPLETED, TRANSCRIBED, UNAVAILABLE, decode_event, event_id
from contract.record import CallSummary, calls_key, decode_summary, record_key, summary_key
from contract.settings import Settings
from contract.webhooks import webhooks_key
from workers.deliver import eventlog

SCAN = 20_000  # newest indexed calls looked through
LOG_SCAN = 2_000  # newest event log entries looked through for an event id
EVENT_TYPES = (COMPLETED, TRANSCRIBED, UNAVAILABLE)
_PHONE = re.compile(r"\+?[\d\s().-]+")


@dataclass
class Found:
    """What a query matched: the calls (newest first), and how the query was read."""

    query: str
    read_as: str
    calls: list[CallSummary] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)  # matches with no summary (not indexed)
    open: str = ""  # one exact hit: the page to open


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def is_phone(query: str) -> bool:
    return _PHONE.fullmatch(query) is not None and len(digits(query)) >= 3


def is_uuid(query: str) -> bool:
    try:
        uuid.UUID(query)
    except ValueError:
        return False
    return True


async def known_call(redis: Redis, prefix: str, call_id: str) -> bool:
    """Whether anything of the call is kept: its webhooks, its record or its summary."""
    return bool(await redis.exists(webhooks_key(prefix, call_id), record_key(prefix, call_id),
                                   summary_key(prefix, call_id)))


async def indexed_ids(redis: Redis, prefix: str) -> list[str]:
    return [i.decode() for i in await redis.zrevrange(calls_key(prefix), 0, SCAN - 1)]


async def summaries(redis: Redis, prefix: str, ids: list[str]) -> list[CallSummary]:
    out: list[CallSummary] = []
    for i in range(0, len(ids), 1000):
        raw = await redis.mget([summary_key(prefix, c) for c in ids[i:i + 1000]])
        out += [decode_summary(r) for r in raw if r]
    return out


async def call_of_event(redis: Redis, settings: Settings, wanted: str) -> str:
    """The call whose event has id `wanted`, or ""."""
    for call_id in await indexed_ids(redis, settings.key_prefix):
        if any(event_id(call_id, t) == wanted for t in EVENT_TYPES):
            return call_id
    for letter in await data.dead_letters(redis, settings.dead_letter_stream):
        if wanted in letter.payload.decode(errors="replace") and letter.call_id:  # a delivery holds its event id
            return letter.call_id
    for _, fields in await redis.xrevrange(eventlog.key(settings.key_prefix), count=LOG_SCAN):
        if fields.get(b"id", b"").decode() == wanted:
            return decode_event(fields[b"event"]).subject
    return ""


async def find(redis: Redis, settings: Settings, query: str) -> Found:
    """Reads `query` as a call id, an event id, a phone number or part of a call id (see the module)."""
    prefix = settings.key_prefix
    if await known_call(redis, prefix, query):
        return Found(query, "call id", open=f"/calls/{query}")
    if is_uuid(query):
        call_id = await call_of_event(redis, settings, query.lower())
        return Found(query, "event id", open=f"/calls/{call_id}" if call_id else "")
    ids = await indexed_ids(redis, prefix)
    if is_phone(query):
        wanted = digits(query)
        found = [s for s in await summaries(redis, prefix, ids)
                 if wanted in digits(s.from_number) or wanted in digits(s.to_number)]
        return Found(query, "phone number", calls=found)
    matched = [i for i in ids if query.lower() in i.lower()]
    found = await summaries(redis, prefix, matched)
    listed = {s.call_id for s in found}
    return Found(query, "part of a call id", calls=found, call_ids=[i for i in matched if i not in listed])


@get("/search")
async def search_page(request: Request[Any, Any, Any], q: FromQuery[str] = "",
                      number: PageNumber = "1") -> Response[Any]:
    settings: Settings = request.app.state.settings
    form, query = Form(), q.strip()
    at = form.whole("page", number, 1, 1, 10**6)
    found = await find(request.app.state.redis, settings, query) if query else Found("", "")
    if found.open:
        return Redirect(found.open, status_code=303)
    return page("search.html", request, form, found=found, calls=paging.paged(found.calls, at),
                link=paging.links(request), clock=trace.clock, colours=charts.COLOURS, scanned=SCAN)
