"""Ledger: what Redis knows about one event at one destination: delivered (a mark) or in flight (a lease).

    {prefix}delivered:{event_id}:{destination}    set once the destination confirmed; TTL `delivered_ttl_s`
    {prefix}delivering:{event_id}:{destination}   the lease of the one attempt in flight; TTL `lease_s`

Every attempt, the inline one and each `deliver` job's, begins with `claim`: delivered already -> nothing to
send; another attempt holds the lease -> wait for its outcome; else this attempt holds the lease until
`settle`. An attempt whose outcome is unknown (cancelled mid-request, its worker killed) is never settled:
its lease runs out on its own, so nobody sends again before the first attempt could still have landed.
This is why replays and re-runs go only where the event did not arrive: `claim` answers "delivered".

A delivered mark lives `delivered_ttl_s`; `keep` makes a call's marks permanent while its dead letter waits
for a replay of any age, and the next `claim` that finds a permanent mark puts its TTL back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from contract.events import COMPLETED, TRANSCRIBED, UNAVAILABLE, event_id

EVENT_TYPES = (COMPLETED, TRANSCRIBED, UNAVAILABLE)  # every event a call can make; its ids follow from the call id

# -1: delivered already; 0: the lease is ours; > 0: milliseconds left on another attempt's lease.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  return -1
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
return math.max(redis.call('PTTL', KEYS[2]), 1)
"""
_SETTLE = """
if ARGV[2] == '1' then redis.call('SET', KEYS[1], '1', 'EX', ARGV[3]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""


@dataclass(frozen=True)
class Claim:
    """`claim`'s answer: `delivered`, or `busy_ms` left on another attempt's lease, or ours (`token`)."""

    keys: tuple[str, str]
    token: str
    delivered: bool = False
    busy_ms: int = 0


class Ledger:
    """The delivery state of events at destinations, shared by every worker through Redis."""

    def __init__(self, redis: Redis, prefix: str, *, delivered_ttl_s: int, lease_s: float) -> None:
        self._redis, self._prefix = redis, prefix
        self._ttl_s, self._lease_ms = delivered_ttl_s, int(lease_s * 1000)
        self._claim, self._settle = redis.register_script(_CLAIM), redis.register_script(_SETTLE)

    def keys(self, event: str, destination: str) -> tuple[str, str]:
        return f"{self._prefix}delivered:{event}:{destination}", f"{self._prefix}delivering:{event}:{destination}"

    async def claim(self, event: str, destination: str) -> Claim:
        keys, token = self.keys(event, destination), uuid.uuid4().hex
        answer = int(await self._claim(keys=keys, args=[token, self._lease_ms, self._ttl_s]))
        return Claim(keys, token, delivered=answer < 0, busy_ms=max(answer, 0))

    async def settle(self, claim: Claim, *, delivered: bool) -> None:
        """Records the outcome (the mark only when delivered) and gives the lease back if still ours."""
        await self._settle(keys=claim.keys, args=[claim.token, int(delivered), self._ttl_s])

    async def keep(self, call_id: str, destinations: Iterable[str]) -> int:
        """Makes the delivered marks of `call_id`'s events permanent (its dead letter may wait long)."""
        marks = [self.keys(event_id(call_id, t), d)[0] for t in EVENT_TYPES for d in destinations]
        async with self._redis.pipeline(transaction=False) as pipe:
            for mark in marks:
                pipe.persist(mark)
            return sum(bool(kept) for kept in await pipe.execute())
