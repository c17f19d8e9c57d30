"""The workers' half of the per-call record (contract/record.py): a job's notes, batched, written once.

A job opens its `Notes` (`begin`), every step it takes adds an entry in memory (`note`: a msgpack encode,
about 2 us, no I/O), and `Writer.flush` writes them all at the end of the job in ONE script call, sent
through the worker's batching client (contract/redisbatch.py) with the other jobs' commands of the same
loop turn:

    RPUSH record:{call} <entries...>; LTRIM to RECORD_KEPT; EXPIRE ttl
    and, when the job handed `wavix.call.completed` to its destinations:
    SET summary:{call} <CallSummary> EX ttl; ZADD calls <at_ms> <call>; ZREMRANGEBYSCORE calls past the ttl

The notes travel in a context variable, so the steps that write them (fetch hook, sink wrapper, alerts,
dead letters: workers/observe.py and workers/context.py) need no new argument; the tasks a job starts
(`asyncio.gather` of its deliveries) share its notes. Outside a job `note` does nothing.

Its cost is measured by `make bench` (the worker with and without workers/observe.py, docs/benchmarks.md);
the receiver's hot path gains no round trip at all.
A record that cannot be written is logged and dropped: the record must never fail or retry a job.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from redis.exceptions import RedisError

from contract import logs
from contract.events import CallCompletedEvent, CloudEvent
from contract.record import (
    RECORD_KEPT,
    CallSummary,
    Entry,
    calls_key,
    encode_entry,
    encode_summary,
    record_key,
    summary_key,
    without_query,
)
from contract.redisbatch import Scripting

log = logs.get("workers.record")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Notes:
    """One job's entries for one call, kept in memory until `flush`."""

    __slots__ = ("attempt", "began_ms", "call_id", "entries", "events", "summary")

    def __init__(self, call_id: str, began_ms: int, attempt: int = 1) -> None:
        self.call_id = call_id
        self.began_ms = began_ms  # the receipt's time: the call's first webhook for process_call
        self.attempt = attempt
        self.entries: list[bytes] = []
        self.events: set[str] = set()
        self.summary: CallSummary | None = None

    def add(self, step: str, **fields: Any) -> None:
        self.entries.append(encode_entry(Entry(at_ms=now_ms(), step=step, **fields)))

    def published(self, event: CloudEvent, destination: str, *, ms: float, traceparent: str = "") -> None:
        """An event reached one destination: the event's first entry in this job, then the delivery's."""
        if event.id not in self.events:
            self.events.add(event.id)
            self.add("event", event_type=event.type, event_id=event.id)
        self.add("delivery", destination=destination, event_type=event.type, event_id=event.id,
                 attempt=self.attempt, outcome="published", ms=round(ms, 2), traceparent=traceparent)
        if isinstance(event, CallCompletedEvent) and self.summary is None:
            self.summary = summarize(event, self.began_ms, now_ms())


_current: ContextVar[Notes | None] = ContextVar("wavix_events_record_notes", default=None)


def begin(call_id: str, began_ms: int, attempt: int = 1) -> Notes:
    """Opens this job's notes (the context variable is the job task's own)."""
    notes = Notes(call_id, began_ms, attempt)
    _current.set(notes)
    return notes


def current() -> Notes | None:
    return _current.get()


def note(step: str, **fields: Any) -> None:
    """Adds an entry to the running job's notes; nothing outside a job."""
    notes = _current.get()
    if notes is not None:
        notes.add(step, **fields)


def summarize(event: CallCompletedEvent, at_ms: int, published_at_ms: int) -> CallSummary:
    data = event.data
    return CallSummary(
        call_id=data.call_id, at_ms=at_ms, outcome=data.outcome, direction=data.direction,
        found_by=data.found_by, alerted=bool(data.alert_reasons), alert_reasons=data.alert_reasons,
        from_number=data.from_.number or "", to_number=data.to.number or "", duration_s=data.duration_s or "",
        published_at_ms=published_at_ms, recording_url=without_query(data.recording_url or ""), event_id=event.id,
    )


# KEYS: the record, the summary, the calls index; ARGV: ttl s, RECORD_KEPT, the summary ('' none), its at_ms,
# the call id, the index's cut-off (ms), then the entries.
_FLUSH = """
if #ARGV > 6 then
  for i = 7, #ARGV, 1000 do redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], 0, ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[1])
end
"""


class Writer:
    """Writes a job's notes in one script call; `scripts` is the worker's batching client (or redis-py's)."""

    def __init__(self, scripts: Scripting, key_prefix: str, ttl_s: int) -> None:
        self._script = scripts.register_script(_FLUSH)
        self._prefix, self._ttl_s = key_prefix, ttl_s

    async def flush(self, notes: Notes) -> bool:
        """False (logged) when Redis refused: the record must never fail or retry a job."""
        if not notes.entries and notes.summary is None:
            return True
        summary, ttl_s = notes.summary, self._ttl_s
        keys = (record_key(self._prefix, notes.call_id), summary_key(self._prefix, notes.call_id),
                calls_key(self._prefix))
        args = (ttl_s, RECORD_KEPT, encode_summary(summary) if summary is not None else "",
                summary.at_ms if summary is not None else 0, notes.call_id, now_ms() - ttl_s * 1000, *notes.entries)
        try:
            await self._script(keys=keys, args=args)
        except (RedisError, OSError) as e:
            log.warning("record.unwritten", call_id=notes.call_id, entries=len(notes.entries), error=type(e).__name__)
            return False
        notes.entries.clear()
        return True
