"""The number index: which calls had a given phone number, so an erasure finds them without scanning Redis.

    {prefix}number:{sha256 hex}    a sorted set per party number: member `<call time ms>:<call id>`, scored by
                                   when it was indexed (ms), so an entry lives the index's life from then (a
                                   backfilled call of last month is kept as long as its records, not dropped)

Written by `process_call` as it builds `wavix.call.completed` (workers/process.py), before any delivery: one
script call through the worker's batching client (contract/redisbatch.py; no round trip of its own), which adds
the call under both numbers, drops entries older than the index's life and gives the key that life as its TTL.
A Redis error fails the try (the job runs again), so no call is delivered without being findable.

Its life (`life_s`) is the longest life of the per-call data it points to: RECORD_RETENTION (record, summary,
the console's index) or WEBHOOK_DEDUP_TTL (webhook lists, transcript state, dedup marks), whichever is longer.
What outlives it is found another way by `wavix-events forget` (workers/privacy/erase.py): the event log and the
Redis Stream destinations by a scan of their entries, the dead letters (few) whole, PostgreSQL by a query.

The key names a number by its plain SHA-256 (with a fixed label), not by REDACT_KEY's HMAC: a key rotation must
not lose the index, and the index adds nothing to what Redis holds for the same life (the records carry the
numbers in clear). An erasure deletes the number's key with the data.
"""

from __future__ import annotations

import hashlib
import time

from redis.asyncio import Redis

from contract.events import CallCompletedEvent
from contract.redisbatch import Scripting
from contract.settings import Settings
from contract.values import party

# KEYS: one index key per number; ARGV: member, now (ms), cut-off (ms), TTL (s)
_ADD = """
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[3])
  redis.call('EXPIRE', key, ARGV[4])
end
return #KEYS
"""


def number_hash(number: str) -> str:
    """The index's name for a number: SHA-256 of its E.164 form (raw text when it does not parse)."""
    normal = party(number).number or number.strip()
    return hashlib.sha256(b"wavix-events number index\0" + normal.encode()).hexdigest()


def index_key(prefix: str, digest: str) -> str:
    return f"{prefix}number:{digest}"


def life_s(settings: Settings) -> int:
    """As long as the longest-lived per-call data the index points to."""
    return max(settings.record_retention, settings.webhook_dedup_ttl)


def call_time_ms(event: CallCompletedEvent) -> int:
    """When the call was (its CDR date), else when its event was built."""
    moment = event.data.date or event.time
    return int(moment.timestamp() * 1000)


class NumberIndex:
    """Adds calls to the index through `scripts` (the worker's batching client, or redis-py's)."""

    def __init__(self, scripts: Scripting, prefix: str, life: int) -> None:
        self._script = scripts.register_script(_ADD)
        self._prefix, self._life = prefix, life

    async def add(self, event: CallCompletedEvent) -> None:
        numbers = {n for n in (event.data.from_.number, event.data.to.number) if n}
        if not numbers:
            return
        keys = sorted(index_key(self._prefix, number_hash(n)) for n in numbers)
        now_ms = int(time.time() * 1000)
        member = f"{call_time_ms(event)}:{event.data.call_id}"
        await self._script(keys=keys, args=[member, now_ms, now_ms - self._life * 1000, self._life])


async def calls_of(redis: Redis, prefix: str, number: str, *, since_ms: int | None = None,
                   until_ms: int | None = None) -> dict[str, int]:
    """The call ids the index holds for `number` whose call time is within [since, until] (when given), with
    their call times (ms)."""
    found: dict[str, int] = {}
    for member in await redis.zrange(index_key(prefix, number_hash(number)), 0, -1):
        at, _, call_id = member.decode().partition(":")
        moment = int(at) if at.isdigit() else 0
        if (since_ms is None or moment >= since_ms) and (until_ms is None or moment <= until_ms):
            found[call_id] = moment
    return found


async def remove(redis: Redis, prefix: str, number: str, calls: dict[str, int]) -> None:
    """Takes the calls (`calls_of`'s answer) out of the number's index; the key goes when it is empty."""
    if calls:
        await redis.zrem(index_key(prefix, number_hash(number)), *(f"{at}:{cid}" for cid, at in calls.items()))
