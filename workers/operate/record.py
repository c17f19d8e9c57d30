"""The workers' half of the per-call record (contract/record.py): a job's notes, batched, written once.

A job opens its `Notes` (`begin`), every step it takes adds an entry in memory (`note`: a msgpack encode,
about 2 us, no I/O), so does every delivery try for the console (`Notes.hold`, workers/deliver/attempts.py),
and at the end of the job they are all written in ONE script call: under the supervised worker, its finish
script (workers/runtime/supervise.py), which ends the job and runs `WRITE` too, so neither the record nor the tries cost
a round trip of their own (two less a job run: "Redis round trips per call" in docs/benchmarks.md); elsewhere
`Writer.flush`, through the worker's batching client (contract/redisbatch.py) with the other jobs' commands of
the same loop turn:

    RPUSH record:{call} <entries...>; LTRIM to RECORD_KEPT; EXPIRE ttl
    and, when the job handed `wavix.call.completed` to its destinations (an operator's replay never does):
    SET summary:{call} <CallSummary> NX EX ttl; if set, ZADD calls NX <at_ms> <call>; ZREMRANGEBYSCORE calls
    past the ttl. NX: the first publication is the call's history; a later one (another destination's
    retry, a dead letter replayed) adds rows, never moves the call in the list, the charts or the latency.

A delivery row carries the try number its destination sees: 1 for the first attempt, made inside
process_call or fetch_transcript whatever that job's own try; `Delivery.tries` + arq's try in a `deliver`
job, the count its dead letter gives (workers/deliver/delivery.py). `replayed` is the operator's side: the
`replay` step a replay command adds to each call's record, and the replays index the overview counts.

The notes travel in a context variable, so the steps that write them (fetch hook, sink wrapper, alerts,
dead letters: workers/operate/observe.py and workers/runtime/context.py) need no new argument; the tasks a job starts
(`asyncio.gather` of its deliveries) share its notes. Outside a job `note` does nothing.

Its cost is measured by `make bench` (the worker with and without workers/operate/observe.py, docs/benchmarks.md);
the receiver's hot path gains no round trip at all.
A record that cannot be written is logged and dropped: the record must never fail or retry a job.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from contract import logs
from contract.events import CallCompletedEvent, CloudEvent
from contract.record import (
    RECORD_KEPT,
    REPLAYS_KEPT_S,
    CallSummary,
    Entry,
    calls_key,
    encode_entry,
    encode_summary,
    record_key,
    replays_key,
    summary_key,
    without_query,
)
from contract.redisbatch import Scripting
from workers.deliver import attempts

log = logs.get("workers.operate.record")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Notes:
    """One job's entries for one call, kept in memory until `flush`."""

    __slots__ = ("attempt", "began_ms", "call_id", "closed", "delivery_try", "entries", "events", "source",
                 "summary", "tries")

    def __init__(self, call_id: str, began_ms: int, attempt: int = 1, *, delivery_try: int = 1,
                 source: str = "") -> None:
        self.call_id = call_id
        self.began_ms = began_ms  # the receipt's time: the call's first webhook for process_call
        self.attempt = attempt
        self.delivery_try = delivery_try  # the try its destination sees: 1 but in a `deliver` job
        self.source = source  # "replay": an operator's replay, which never writes the call's summary
        self.entries: list[bytes] = []
        self.events: set[str] = set()
        self.summary: CallSummary | None = None
        self.tries: list[attempts.Parts] = []  # the job's delivery tries for the console, written with the notes
        self.closed = False  # taken for writing: a try made later (one that outlived its job) writes on its own

    def hold(self, attempt: attempts.Parts) -> bool:
        """Keeps one try's write (workers/deliver/attempts.py) for the job's end; False once the notes are taken."""
        if self.closed or not self.call_id:
            return False
        self.tries.append(attempt)
        return True

    def add(self, step: str, **fields: Any) -> None:
        self.entries.append(encode_entry(Entry(at_ms=now_ms(), step=step, **fields)))

    def published(self, event: CloudEvent, destination: str, *, ms: float, traceparent: str = "") -> None:
        """An event reached one destination: the event's first entry in this job, then the delivery's."""
        if event.id not in self.events:
            self.events.add(event.id)
            self.add("event", event_type=event.type, event_id=event.id)
        self.add("delivery", destination=destination, event_type=event.type, event_id=event.id, source=self.source,
                 attempt=self.delivery_try, outcome="published", ms=round(ms, 2), traceparent=traceparent)
        if isinstance(event, CallCompletedEvent) and self.summary is None and self.source != "replay":
            self.summary = summarize(event, self.began_ms, now_ms())


_current: ContextVar[Notes | None] = ContextVar("wavix_events_record_notes", default=None)


def begin(call_id: str, began_ms: int, attempt: int = 1, *, delivery_try: int = 1, source: str = "") -> Notes:
    """Opens this job's notes (the context variable is the job task's own)."""
    notes = Notes(call_id, began_ms, attempt, delivery_try=delivery_try, source=source)
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
        account=event.account,
    )


# One job's notes and delivery tries, a Lua function, so the supervised worker writes them in its finish script
# (workers/runtime/supervise.py): K the record, the summary, the calls index, then 3 keys a try; ARGV from `o` + 1:
# ttl s, RECORD_KEPT, the summary ('' none), its at_ms, the call id, the index's cut-off (ms), the number of tries, 6
# arguments a try (workers/deliver/attempts.py `WRITE_ONE`), then the entries.
WRITE = attempts.WRITE_ONE + """
local function record(K, o)
local tries = tonumber(ARGV[o + 7])
for j = 0, tries - 1 do
  local a = o + 8 + 6 * j
  attempt({K[4 + 3 * j], K[5 + 3 * j], K[6 + 3 * j]},
          {ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]})
end
local first = o + 8 + 6 * tries
if #ARGV >= first then
  for i = first, #ARGV, 1000 do redis.call('RPUSH', K[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
  redis.call('LTRIM', K[1], -tonumber(ARGV[o + 2]), -1)
  redis.call('EXPIRE', K[1], ARGV[o + 1])
end
if ARGV[o + 3] ~= '' then
  if redis.call('SET', K[2], ARGV[o + 3], 'NX', 'EX', ARGV[o + 1]) then
    redis.call('ZADD', K[3], 'NX', ARGV[o + 4], ARGV[o + 5])
  end
  redis.call('ZREMRANGEBYSCORE', K[3], 0, ARGV[o + 6])
  redis.call('EXPIRE', K[3], ARGV[o + 1])
end
end
"""
FLUSH = WRITE + "record(KEYS, 0)\n"
Parts = tuple[list[str], list[Any]]


class Writer:
    """Writes a job's notes in one script call; `scripts` is the worker's batching client (or redis-py's)."""

    def __init__(self, scripts: Scripting, key_prefix: str, ttl_s: int) -> None:
        self._script = scripts.register_script(FLUSH)
        self._prefix, self._ttl_s = key_prefix, ttl_s

    def parts(self, notes: Notes) -> Parts | None:
        """The notes and tries as `WRITE`'s keys and arguments, taken out of `notes` (closed: a later try writes on
        its own); None when there is nothing to write."""
        notes.closed = True
        if not notes.entries and notes.summary is None and not notes.tries:
            return None
        summary, ttl_s = notes.summary, self._ttl_s
        keys = [record_key(self._prefix, notes.call_id), summary_key(self._prefix, notes.call_id),
                calls_key(self._prefix), *(k for try_keys, _ in notes.tries for k in try_keys)]
        args = [ttl_s, RECORD_KEPT, encode_summary(summary) if summary is not None else "",
                summary.at_ms if summary is not None else 0, notes.call_id, now_ms() - ttl_s * 1000, len(notes.tries),
                *(a for _, try_args in notes.tries for a in try_args), *notes.entries]
        notes.entries.clear()
        notes.tries.clear()
        return keys, args

    async def flush(self, notes: Notes) -> bool:
        """False (logged) when Redis refused: the record must never fail or retry a job."""
        parts = self.parts(notes)
        return True if parts is None else await write(self._script, parts)


async def write(script: Any, parts: Parts) -> bool:
    """Runs `FLUSH` (`script`) with a job's `parts`; False (logged) when Redis refused."""
    keys, args = parts
    try:
        await script(keys=keys, args=args)
    except (RedisError, OSError) as e:
        unwritten(parts, type(e).__name__)
        return False
    return True


def unwritten(parts: Parts, error: str) -> None:
    """Logs a job's notes that Redis refused: the call, its entries and tries."""
    args = parts[1]
    tries = int(args[6])
    log.warning("record.unwritten", call_id=str(args[4]), entries=len(args) - 7 - 6 * tries, tries=tries, error=error)


async def replayed(redis: Redis, key_prefix: str, kind: str, steps: Sequence[tuple[str, Entry]]) -> None:
    """An operator's replay of `kind` (contract/record.py `REPLAY_KINDS`): each (call id, `replay` entry) added
    to its call's record where the record is still kept (RPUSHX: its life is the call's), and counted in the
    replays index, pipelined. Logged and dropped when Redis refuses: the record never fails a replay."""
    index = replays_key(key_prefix, kind)
    try:
        for start in range(0, len(steps), 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for call_id, entry in steps[start:start + 1000]:
                    pipe.rpushx(record_key(key_prefix, call_id), encode_entry(entry))  # type: ignore[arg-type]
                    pipe.ltrim(record_key(key_prefix, call_id), -RECORD_KEPT, -1)
                    pipe.zadd(index, {_member(call_id, entry): entry.at_ms})
                pipe.zremrangebyscore(index, 0, now_ms() - REPLAYS_KEPT_S * 1000)
                pipe.expire(index, REPLAYS_KEPT_S)
                await pipe.execute()
    except (RedisError, OSError) as e:
        log.warning("record.replay_unwritten", kind=kind, replays=len(steps), error=type(e).__name__)


def _member(call_id: str, entry: Entry) -> str:
    """One replay in the index: its time, call, job (a letter's kind), event and destination."""
    return f"{entry.at_ms}:{call_id}:{entry.job}:{entry.event_id}:{entry.destination}"
