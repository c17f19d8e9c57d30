"""Gate: the pace of one alert channel (Slack's, Teams', ...), shared in Redis by every process that sends to it.

Alerts (workers/alert/outbox.py) and transcript replies (workers/alert/notes.py) pass the same gate, so the
channel never gets more than one message per `min_interval_s` (Slack allows about one per second) whoever
sends it. A 429 (or the bot API's `ratelimited`) blocks the channel for every process until `Retry-After`:
Slack may disable an app that keeps sending while limited.

Every time is Redis's (`TIME`, read inside the scripts): with each worker's own clock, one running 60 s
fast took alerts another was still sending, and Slack got them twice. `RESCHEDULE` is the one script both
queues (alerts, notes) use to put a claimed record back for later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

Sleep = Callable[[float], Awaitable[None]]

# Redis's clock in milliseconds, for the scripts (TIME is allowed in scripts since effects replication).
NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# 0 when this caller may send now (and the next one must wait the interval), else milliseconds to wait.
_SLOT = """
local blocked = redis.call('PTTL', KEYS[1])
if blocked > 0 then return blocked end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 0 end
return math.max(redis.call('PTTL', KEYS[2]), 1)
"""
# Put a claimed record back for ARGV[2] ms from now (new record ARGV[3]), unless another worker already sent it.
RESCHEDULE = NOW + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
_BLOCK = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
"""


def stopped(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()


async def redis_now_ms(redis: Redis) -> int:
    """Redis's clock, the one every due time is measured against."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


class Gate:
    """One channel's pace: `wait` until this process may send, `block` the channel after a 429."""

    def __init__(self, redis: Redis, prefix: str, channel_key: str, min_interval_s: float, sleep: Sleep,
                 service: str = "slack") -> None:
        self.redis, self.interval_ms, self.sleep = redis, int(min_interval_s * 1000), sleep
        self.gate = f"{prefix}{service}:gate:{channel_key}"  # `service`: the channel's name (workers/alert/channel.py)
        self.blocked = f"{prefix}{service}:blocked:{channel_key}"

    async def wait(self, stop: asyncio.Event | None) -> bool:
        """Waits until this process may send (1/interval, and not while Slack said 429); False if stopped."""
        slot = self.redis.register_script(_SLOT)
        while not stopped(stop):
            wait_ms = int(await slot(keys=[self.blocked, self.gate], args=[self.interval_ms]))
            if wait_ms <= 0:
                return True
            await self.sleep(wait_ms / 1000)
        return False

    async def block(self, delay_ms: int) -> None:
        """Nothing goes to the channel for `delay_ms`, from any process (a longer block already set stays)."""
        await self.redis.register_script(_BLOCK)(keys=[self.blocked], args=[delay_ms])
