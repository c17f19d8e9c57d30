"""Destination health: what each attempt tells about one destination, kept in Redis for every worker to share.

    {prefix}destination:{name}   hash: streak (consecutive failed tries), since_ms (failing since), ok_ms (last
                                 success), fail_ms and error (last failure), delivered, failed, dead, paused_ms
    {prefix}backlog:{name}       sorted set: event ids waiting for a retry or parked, scored by first try (ms)
    {prefix}parked:{name}        sorted set: deliveries held while it is paused (workers/deliver/control.py)
    {prefix}rate:{name}          the rate limiter's next free slot (workers/deliver/ratelimit.py)

The hash and the backlog are written by the ledger's settle script (`ON_SETTLE`, workers/deliver/ledger.py), in
the same round trip that records the delivery, so health costs no request of its own; times come from Redis's
clock (TIME), the same for every worker. A backlog entry whose job vanished (arq's job expiry) is trimmed once
it is older than JOB_EXPIRY. `wavix-events destinations` reads it all back (`read`); `run_gauges` copies it into
each worker's /metrics every GAUGE_INTERVAL_S, so Prometheus sees the same numbers from every worker (use max).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from contract import logs

log = logs.get("workers.deliver.health")

GAUGE_INTERVAL_S = 15.0

# KEYS[3] the health hash, KEYS[4] the backlog; ARGV[2] '1' delivered, ARGV[4] event id, ARGV[5] reason,
# ARGV[6] the delivery's first try (ms), ARGV[7] the backlog's horizon (ms); `now` is set by the caller.
ON_SETTLE = """
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[3], 'ok_ms', now, 'streak', 0)
  redis.call('HDEL', KEYS[3], 'since_ms')
  redis.call('HINCRBY', KEYS[3], 'delivered', 1)
  redis.call('ZREM', KEYS[4], ARGV[4])
else
  redis.call('HINCRBY', KEYS[3], 'streak', 1)
  redis.call('HINCRBY', KEYS[3], 'failed', 1)
  redis.call('HSETNX', KEYS[3], 'since_ms', now)
  redis.call('HSET', KEYS[3], 'fail_ms', now, 'error', ARGV[5])
  redis.call('ZADD', KEYS[4], 'NX', ARGV[6], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[7]))
end
"""


@dataclass(frozen=True)
class Keys:
    """The Redis keys of one destination's state."""

    health: str
    backlog: str
    parked: str
    rate: str


def keys(prefix: str, name: str) -> Keys:
    return Keys(f"{prefix}destination:{name}", f"{prefix}backlog:{name}", f"{prefix}parked:{name}",
                f"{prefix}rate:{name}")


@dataclass(frozen=True)
class Health:
    """One destination as an operator sees it; times are Unix ms (0: never)."""

    name: str
    streak: int = 0
    failing_since_ms: int = 0
    last_success_ms: int = 0
    last_failure_ms: int = 0
    last_error: str = ""
    delivered: int = 0
    failed: int = 0
    dead_letters: int = 0
    paused_since_ms: int = 0
    backlog: int = 0
    oldest_ms: int = 0
    parked: int = 0

    @property
    def paused(self) -> bool:
        return self.paused_since_ms > 0


async def read(redis: Redis, prefix: str, names: Sequence[str]) -> list[Health]:
    """Every destination's health in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            k = keys(prefix, name)
            pipe.hgetall(k.health)
            pipe.zcard(k.backlog)
            pipe.zrange(k.backlog, 0, 0, withscores=True)
            pipe.zcard(k.parked)
        answers = await pipe.execute()
    out = []
    for i, name in enumerate(names):
        raw, backlog, oldest, parked = answers[4 * i:4 * i + 4]
        h = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
        number = _numbers(h)
        out.append(Health(
            name=name, streak=number("streak"), failing_since_ms=number("since_ms"), last_success_ms=number("ok_ms"),
            last_failure_ms=number("fail_ms"), last_error=h.get("error", ""), delivered=number("delivered"),
            failed=number("failed"), dead_letters=number("dead"), paused_since_ms=number("paused_ms"),
            backlog=int(backlog), oldest_ms=int(oldest[0][1]) if oldest else 0, parked=int(parked),
        ))
    return out


def _numbers(fields: dict[str, str]) -> Callable[[str], int]:
    return lambda name: int(float(fields.get(name, "0") or 0))


async def dead_lettered(redis: Redis, prefix: str, name: str, event_id: str) -> None:
    """A delivery to `name` was dead-lettered: counted, and out of the backlog."""
    k = keys(prefix, name)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hincrby(k.health, "dead", 1)
        pipe.zrem(k.backlog, event_id)
        await pipe.execute()


async def run_gauges(
    redis: Redis, prefix: str, names: Callable[[], Sequence[str]], publish: Callable[[list[Health]], None],
    *, stop: asyncio.Event, interval_s: float = GAUGE_INTERVAL_S,
) -> None:
    """Reads every destination's health each `interval_s` and hands it to `publish` (the metrics), until `stop`."""
    while not stop.is_set():
        try:
            publish(await read(redis, prefix, names()))
        except RedisError as e:  # Redis down: the gauges keep their last values; the queue metrics say more
            log.warning("destinations.gauges_unread", error=type(e).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
