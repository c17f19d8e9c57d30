"""Ledger: what Redis knows about one event at one destination: delivered (a mark) or in flight (a lease).

    {prefix}delivered:{event_id}:{destination}    set once the destination confirmed; TTL `delivered_ttl_s`,
                                                  longer while its call's dead letter waits (`keep`)
    {prefix}delivering:{event_id}:{destination}   the lease of the one attempt in flight; TTL `lease_s`

Every attempt, the inline one and each `deliver` job's, begins with `claim`: delivered already -> nothing to
send; another attempt holds the lease -> wait for its outcome; else this attempt holds the lease until
`settle`. An attempt whose outcome is unknown (cancelled mid-request, its worker killed) is never settled:
its lease runs out on its own, so nobody sends again before the first attempt could still have landed.
This is why replays and re-runs go only where the event did not arrive: `claim` answers "delivered".

A delivered mark lives `delivered_ttl_s`; `keep` lengthens a call's marks to the life of its dead letter (and a
day: workers/deadletter.py's MARKS_KEPT_S), so a replay skips the destinations that have its events. Every mark
ends: `keep` once made them permanent (PERSIST), and a purged letter, one never replayed, or a replay that made
only the transcript left them so forever (issue #22); a `claim` that finds a mark left permanent so puts its
TTL back, and so does `keep`.

One round trip decides a try: `claim` also answers "paused" (the operator paused the destination:
workers/deliver/control.py) and takes the destination's rate-limit slot (workers/deliver/ratelimit.py), or
says when one is free; `settle` also updates the destination's health and backlog (workers/deliver/health.py).
`claim(force=True)` ignores the delivered mark: an operator's replay sends the event again on purpose.
`claim_all` is `claim` for every destination of an event in one script call, with the event log's entry
appended first (workers/deliver/eventlog.py): a job's first attempts cost one round trip before the sends,
where an XADD and one claim per destination were made before (docs/benchmarks.md of 2026-12-02, in git).

**Settled with the write.** A destination on the ledger's own Redis (a Redis Stream there: the default
EVENTS_STREAM) needs no settle call of its own: `offer` puts the try's delivered settle in a context variable
while the sink publishes, and the sink runs it in its append's script (`WITH_SETTLE`, `Offer.taken`). Entry,
publish mark, delivered mark, health and the lease given back are then one atomic step, so a worker killed
around it leaves all or nothing, and a try costs the claim and the append: one round trip less a delivery
(workers/deliver/sinks/redis_stream.py). With the record's fold (workers/operate/record.py), the worker's round trips
per call went from 23.22 to 18.36 (bench/redis_cost.py; "Redis round trips per call" in docs/benchmarks.md).
Every other sink leaves the offer, and `settle` runs after it as before. An append whose answer is lost fails the
try as Transient (settled as failed); the retry's claim finds the delivered mark if the script ran, so the entry
is never made twice (tests/test_delivery_stream_settle.py).

**An outage in the middle.** Redis may run a claim or a settle and the answer never come back (a connection
reset, a restart). Each then waits the outage out and asks again with the same token, for as long as it
lasts (the job's own timeout, JOB_TIMEOUT, bounds the wait); a claim that finds a lease holding its own
token has it. Failing instead left a lease nobody held, which the job's re-run found "busy" and waited out
(LEASE_S, 45 s), and a confirmed delivery without its mark, which was sent again once the lease ran out
(tests/test_delivery_mark_outage.py has both). Asking again is safe: a claim that finds its own lease takes
nothing more (no second rate slot; it sends at once), a second event log entry is skipped by its reader,
and a settle sets the same mark (the destination's delivered/failed counters may count it twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from contract import logs
from contract.events import COMPLETED, TRANSCRIBED, UNAVAILABLE, event_id
from contract.redisbatch import Scripting
from workers.deliver import health, ratelimit
from workers.deliver.eventlog import LogEntry
from workers.runtime.supervise import until_answered

log = logs.get("workers.deliver.ledger")

ATTEMPT_LIMIT_S = 40.0  # one attempt's bound (workers/deliver/delivery.py): a sink's connect, declare, publish
LEASE_S = ATTEMPT_LIMIT_S + 5.0  # no other attempt starts while one may still land
EVENT_TYPES = (COMPLETED, TRANSCRIBED, UNAVAILABLE)  # every event a call can make; its ids follow from the call id

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# {-1}: delivered already; {-2}: paused; {-3, ms}: no rate slot for ms; {1, ms}: another attempt's lease has
# ms left; {0, ms}: the lease is ours, send after ms (the rate slot taken; {0, 0} if it was ours already).
# One destination's claim, a Lua function whose parameters shadow KEYS and ARGV, so the rate limiter's
# fragment (written against KEYS[4], ARGV[5], ARGV[6]) is the same text for one destination or many.
_CLAIM_ONE = """
local function claim(KEYS, ARGV)
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  return {-1, 0}
end
if redis.call('HEXISTS', KEYS[3], 'paused_ms') == 1 then return {-2, 0} end
local busy = redis.call('PTTL', KEYS[2])
if busy ~= -2 then
  if redis.call('GET', KEYS[2]) == ARGV[1] then return {0, 0} end
  return {1, math.max(busy, 1)}
end
""" + ratelimit.GCRA + """
redis.call('SET', KEYS[2], ARGV[1], 'PX', math.ceil(tonumber(ARGV[2]) + wait))
""" + ratelimit.GCRA_TAKE + """
return {0, math.ceil(wait)}
end
"""
# Every destination of one event in one round trip (4 keys and 2 arguments each, after the common ones), and
# the event log's entry first when KEYS[1] is given (workers/deliver/eventlog.py), unless KEYS[2] names the
# event's first entry still in the log: then that entry's JSON is answered last, and the job sends it (first
# build wins). ARGV[1] the number of destinations, ARGV[2..4] lease ms, mark TTL s, force; ARGV[5] the longest
# wait in place (ms); ARGV[6] the log's MINID, ARGV[7..9] the entry's id, type and JSON, ARGV[10] the log's
# retention (s). Answers {code, ms} per destination, in order, then the first build's JSON when there was one.
_CLAIM = _NOW + _CLAIM_ONE + """
local first = nil
if KEYS[1] ~= '' then
  local at = redis.call('GET', KEYS[2])
  if at then
    local found = redis.call('XRANGE', KEYS[1], at, at)
    if #found > 0 then
      local fields = found[1][2]
      for j = 1, #fields - 1, 2 do
        if fields[j] == 'event' then first = fields[j + 1] end
      end
    end
  end
  if not first then
    local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[6], '*', 'id', ARGV[7], 'type', ARGV[8], 'event', ARGV[9])
    redis.call('SET', KEYS[2], id, 'EX', ARGV[10])
  end
end
local out = {}
for i = 0, tonumber(ARGV[1]) - 1 do
  local k, a = 3 + 4 * i, 11 + 2 * i
  local answer = claim({KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]},
                       {ARGV[a], ARGV[2], ARGV[3], ARGV[4], ARGV[a + 1], ARGV[5]})
  out[#out + 1] = answer[1]
  out[#out + 1] = answer[2]
end
if first then out[#out + 1] = first end
return out
"""
# One settle, a Lua function (as `claim` above), so a sink writing to this Redis runs it in its own script
# (`WITH_SETTLE`, `Offer`): KEYS the mark, the lease, the health hash, the backlog; ARGV as `Ledger.settle` sends.
_SETTLE_ONE = """
local function settle(KEYS, ARGV)
if ARGV[2] == '1' then redis.call('SET', KEYS[1], '1', 'EX', ARGV[3]) end
""" + health.ON_SETTLE + """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
end
"""
WITH_SETTLE = _NOW + _SETTLE_ONE  # defines `settle(KEYS, ARGV)`: 4 keys, 7 arguments (`Offer.keys`, `Offer.args`)
_SETTLE = WITH_SETTLE + """
settle(KEYS, ARGV)
return 1
"""


@dataclass(frozen=True)
class Claim:
    """`claim`'s answer: `delivered`, or `busy_ms` left on another attempt's lease, or ours (`token`)."""

    keys: tuple[str, str]
    token: str
    destination: health.Keys
    delivered: bool = False
    busy_ms: int = 0
    paused: bool = False
    throttled_ms: int = 0  # no rate slot: come back in this many ms (nothing was taken)
    wait_ms: int = 0  # the slot taken is this many ms ahead: sleep, then send


@dataclass
class Offer:
    """A try's delivered settle, offered to its sink (`Ledger.offer`): a sink that writes to the ledger's own Redis
    (`url`, as REDIS_URL names it) runs `settle(keys, args)` in its write's script (`WITH_SETTLE`) and says so
    (`taken`); any other sink leaves it, and `Ledger.settle` runs as ever."""

    url: str
    keys: list[str]
    args: list[str | int]
    taken: bool = False


_offered: ContextVar[Offer | None] = ContextVar("wavix_events_settle_offer", default=None)


def offered() -> Offer | None:
    """The running try's settle offer, if any (a context variable: the sink's signature stays the same)."""
    return _offered.get()


def _claim(keys: tuple[str, str], token: str, d: health.Keys, code: int, ms: int) -> Claim:
    return Claim(keys, token, d, delivered=code == -1, paused=code == -2, throttled_ms=ms if code == -3 else 0,
                 busy_ms=ms if code == 1 else 0, wait_ms=ms if code == 0 else 0)


class Ledger:
    """The delivery state of events at destinations, shared by every worker through Redis."""

    def __init__(self, redis: Redis, prefix: str, *, delivered_ttl_s: int, lease_s: float,
                 backlog_horizon_s: int = 7 * 86400, scripts: Scripting | None = None, url: str = "") -> None:
        """`scripts`: the client that runs `claim` and `settle` (a worker's batching one), else `redis`. `url`: the
        Redis of these keys as REDIS_URL names it; given, a try offers its settle to a sink writing there."""
        self._redis, self._prefix, self._url = redis, prefix, url
        self._ttl_s, self._lease_ms = delivered_ttl_s, int(lease_s * 1000)
        self._horizon_ms = backlog_horizon_s * 1000
        host = scripts if scripts is not None else redis
        self._claim, self._settle = host.register_script(_CLAIM), host.register_script(_SETTLE)

    def keys(self, event: str, destination: str) -> tuple[str, str]:
        return f"{self._prefix}delivered:{event}:{destination}", f"{self._prefix}delivering:{event}:{destination}"

    async def claim(self, event: str, destination: str, *, force: bool = False, max_per_second: float = 0.0,
                    max_wait_s: float = ratelimit.MAX_SLEEP_S) -> Claim:
        """Takes the lease (and a rate slot), unless delivered (and not `force`), paused, busy or throttled."""
        claims, _ = await self.claim_all(event, [(destination, max_per_second)], force=force, max_wait_s=max_wait_s)
        return claims[0]

    async def claim_all(self, event: str, destinations: Sequence[tuple[str, float]], *, force: bool = False,
                        max_wait_s: float = ratelimit.MAX_SLEEP_S,
                        log: LogEntry | None = None) -> tuple[list[Claim], bytes | None]:
        """`claim` for each (destination, max_per_second), in one round trip, after appending `log` (the event
        log's entry) when given: a job's first attempts cost one script call whatever the destinations. Also
        answers the event's first build (its logged JSON) when `log` is a later build of it, else None."""
        keys: list[str] = [log.key, log.first] if log is not None else ["", ""]
        args: list[str | int | float | bytes] = [len(destinations), self._lease_ms, self._ttl_s, int(force),
                                                 int(max_wait_s * 1000), *(log.args() if log else ("", "", "", "", 0))]
        made: list[tuple[tuple[str, str], str, health.Keys]] = []
        for name, max_per_second in destinations:
            d, pair, token = health.keys(self._prefix, name), self.keys(event, name), uuid.uuid4().hex
            keys += [*pair, d.health, d.rate]
            args += [token, ratelimit.interval_ms(max_per_second)]
            made.append((pair, token, d))
        answered = await _until_answered(self._claim, keys, args, "claim", event)
        answers = [int(x) for x in answered[:2 * len(made)]]
        first = bytes(answered[-1]) if len(answered) > 2 * len(made) else None
        return [_claim(pair, token, d, answers[2 * i], answers[2 * i + 1])
                for i, (pair, token, d) in enumerate(made)], first

    async def settle(self, claim: Claim, *, delivered: bool, event: str = "", reason: str = "",
                     first_at_ms: int = 0) -> None:
        """Records the outcome (the mark only when delivered), the destination's health and backlog, and gives
        the lease back if still ours."""
        keys, args = self._settling(claim, delivered, event, reason, first_at_ms)
        await _until_answered(self._settle, keys, args, "settle", event)

    @contextmanager
    def offer(self, claim: Claim, *, event: str, first_at_ms: int) -> Iterator[Offer | None]:
        """While the block runs (the try's publish), offers its delivered settle to a sink on this ledger's Redis
        (`Offer`); None without a `url`. Whoever runs the block settles after it unless the offer was `taken`."""
        if not self._url:
            yield None
            return
        offer = Offer(self._url, *self._settling(claim, True, event, "", first_at_ms))
        token = _offered.set(offer)
        try:
            yield offer
        finally:
            _offered.reset(token)

    def _settling(self, claim: Claim, delivered: bool, event: str, reason: str,
                  first_at_ms: int) -> tuple[list[str], list[str | int]]:
        keys = [*claim.keys, claim.destination.health, claim.destination.backlog]
        args: list[str | int] = [claim.token, int(delivered), self._ttl_s, event, reason[:300], first_at_ms,
                                 self._horizon_ms]
        return keys, args

    async def keep(self, call_id: str, destinations: Iterable[str], *, ttl_s: int) -> int:
        """Lengthens the delivered marks of `call_id`'s events to `ttl_s` (never below their own TTL), as long
        as its dead letter may wait for a replay; returns how many there were."""
        marks = [self.keys(event_id(call_id, t), d)[0] for t in EVENT_TYPES for d in destinations]
        async with self._redis.pipeline(transaction=False) as pipe:
            for mark in marks:
                pipe.expire(mark, max(ttl_s, self._ttl_s))
            return sum(bool(kept) for kept in await pipe.execute())


async def _until_answered(script: Any, keys: list[str], args: list[Any], what: str, event: str) -> Any:
    """`script(keys, args)`'s answer, asked again with the same arguments until Redis gives one (see the
    module's docstring)."""
    return await until_answered(lambda: script(keys=keys, args=args), what=f"ledger {what}", event_id=event)
