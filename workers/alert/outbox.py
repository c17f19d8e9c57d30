"""Outbox: Slack alerts sent once, at most one message per second per channel, and never lost.

    queue_alert ──> due (ZSET, score = when) + data (HASH) ──> dispatch_pending ──> Sender.send
                    claim = move the score a lease ahead      ack = ZREM + HDEL after Slack's 2xx

Crash-safety: claiming an alert only pushes its score a lease (60 s) into the future; a worker that dies
before the ack leaves it to become due again, so a crash means at most a resend, never a loss. More
alerts due at once than the digest threshold go out as one digest message (workers/alert/rules.py renders).

Every time is Redis's (`TIME`, read inside the scripts): with each worker's own clock, one running 60 s
fast took alerts another was still sending, and Slack got them twice. Every decision lives in Redis too:
a rate-limit pause (a 429, or the bot API's `ratelimited`) blocks the channel for every worker, and a
record that no longer decodes is set aside as a `slack_alert` dead letter instead of holding its whole
claimed batch (up to `digest_max` alerts) in a loop of failed claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contract import logs
from workers.alert.rules import (
    DEFAULT_POLICY,
    Alert,
    DeliveryPolicy,
    DispatchStats,
    Pending,
    alerted_key,
    decode_pending,
    encode_alert,
    encode_pending,
    pending_keys,
    render_alert,
    render_digest,
)
from workers.alert.slack import Sender, SlackPermanent, SlackRateLimited, SlackRetry
from workers.deadletter import dead_letter

log = logs.get("workers.alert.outbox")

Sleep = Callable[[float], Awaitable[None]]

# Redis's clock in milliseconds, for the scripts below (TIME is allowed in scripts since effects replication).
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# Gate + push in one step: an alert can never be marked "alerted" without being queued.
_QUEUE = _NOW + """
if ARGV[1] == '1' then redis.call('SET', KEYS[1], now, 'EX', ARGV[2])
elseif not redis.call('SET', KEYS[1], now, 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[3])
return 1
"""
# Claim what is due: one alert, or up to ARGV[3] when more than ARGV[2] wait (a digest). Claiming
# moves the score a lease (ARGV[1] ms) ahead, so a dead worker's alerts come back by themselves.
_CLAIM = _NOW + """
local n = redis.call('ZCOUNT', KEYS[1], '-inf', now)
if n == 0 then return {} end
local limit = 1
if n > tonumber(ARGV[2]) then limit = tonumber(ARGV[3]) end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  local rec = redis.call('HGET', KEYS[2], id)
  if rec then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
    out[#out + 1] = id
    out[#out + 1] = rec
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""
# 0 when this caller may send now (and the next one must wait the interval), else milliseconds to wait.
_SLOT = """
local blocked = redis.call('PTTL', KEYS[1])
if blocked > 0 then return blocked end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 0 end
return math.max(redis.call('PTTL', KEYS[2]), 1)
"""
_BLOCK = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
"""
# Put a claimed alert back for ARGV[2] ms from now, unless another worker already delivered it.
_RESCHEDULE = _NOW + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""


async def queue_alert(
    redis: Redis,
    alert: Alert,
    *,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    force: bool = False,
) -> bool:
    """Queues the alert, due now by Redis's clock; False when this call and reason was already alerted
    (`force` replays anyway)."""
    due, data = pending_keys(policy.prefix)
    record = encode_pending(Pending(alert=alert, queued_at_ms=time.time_ns() // 1_000_000))  # for the record
    args: list[bytes | str | int] = [int(force), policy.alerted_ttl_s, alert.key, record]
    queued = bool(await redis.register_script(_QUEUE)(keys=[alerted_key(alert, policy.prefix), due, data], args=args))
    log.info("alert.queued" if queued else "alert.duplicate", call_id=alert.call_id, reason=alert.reason)
    return queued


Batch = list[tuple[str, Pending]]


def _stopped(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()


class _Dispatcher:
    """One pass over the pending alerts of one channel; every decision is in Redis, shared by processes."""

    def __init__(
        self,
        redis: Redis,
        sender: Sender,
        *,
        channel_key: str,
        digest_threshold: int,
        dead_letter_stream: str,
        policy: DeliveryPolicy,
        sleep: Sleep,
    ) -> None:
        self.redis, self.sender, self.channel = redis, sender, channel_key
        self.threshold, self.dead_stream, self.policy = digest_threshold, dead_letter_stream, policy
        self.sleep = sleep
        self.due, self.data = pending_keys(policy.prefix)
        self.gate = f"{policy.prefix}slack:gate:{channel_key}"
        self.blocked = f"{policy.prefix}slack:blocked:{channel_key}"

    async def drain(self, max_messages: int | None, stop: asyncio.Event | None) -> DispatchStats:
        stats, messages = DispatchStats(), 0
        while (max_messages is None or messages < max_messages) and not _stopped(stop):
            if not await self.redis.zcount(self.due, "-inf", await redis_now_ms(self.redis)):
                break
            if not await self._wait_for_slot(stop):
                break
            batch = await self._claim(stats)
            if batch:  # else another process took them after we looked: look again
                messages += 1
                await self._deliver(batch, stats)
        return stats

    async def _wait_for_slot(self, stop: asyncio.Event | None) -> bool:
        """Waits until this process may send to the channel (1/interval, and not while Slack said 429)."""
        slot = self.redis.register_script(_SLOT)
        while not _stopped(stop):
            wait_ms = int(await slot(keys=[self.blocked, self.gate], args=[int(self.policy.min_interval_s * 1000)]))
            if wait_ms <= 0:
                return True
            await self.sleep(wait_ms / 1000)
        return False

    async def _claim(self, stats: DispatchStats) -> Batch:
        """Claims what is due; a record that does not decode is dead-lettered, the others are returned."""
        args = [int(self.policy.lease_s * 1000), self.threshold, self.policy.digest_max]
        flat = await self.redis.register_script(_CLAIM)(keys=[self.due, self.data], args=args)
        batch: Batch = []
        for key, record in ((flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)):
            try:
                batch.append((key, decode_pending(record)))
            except msgspec.DecodeError as e:
                await self._set_aside(key, record, f"undecodable outbox record: {e}", stats)
        return batch

    async def _set_aside(self, key: str, record: bytes, reason: str, stats: DispatchStats) -> None:
        """A poison record: its bytes go to the dead-letter stream, as they are, and it leaves the outbox."""
        call_id = key.rsplit(":", 1)[0]
        await dead_letter(self.redis, self.dead_stream, kind="slack_alert", reason=reason, attempts=0,
                          payload=record, call_id=call_id)
        await self._remove([key])
        stats.dead_lettered += 1

    async def _deliver(self, batch: Batch, stats: DispatchStats) -> None:
        alerts = [pending.alert for _, pending in batch]
        message = render_alert(alerts[0]) if len(alerts) == 1 else render_digest(alerts)
        try:
            await self.sender.send(message)
        except SlackRateLimited as e:
            await self._rate_limited(batch, e, stats)
        except SlackRetry as e:
            await self._retry(batch, e, stats)
        except SlackPermanent as e:
            for key, pending in batch:
                await self._dead_letter(key, pending, e.reason, pending.attempts + 1, stats)
        else:
            await self._remove([key for key, _ in batch])
            self._sent(batch, stats)

    def _sent(self, batch: Batch, stats: DispatchStats) -> None:
        if len(batch) == 1:
            stats.sent += 1
            alert, attempt = batch[0][1].alert, batch[0][1].attempts + 1
            log.info("alert.sent", call_id=alert.call_id, reason=alert.reason, attempt=attempt, channel=self.channel)
        else:
            stats.digests += 1
            stats.digested += len(batch)
            log.info("alert.digest_sent", alerts=len(batch), channel=self.channel)

    async def _rate_limited(self, batch: Batch, e: SlackRateLimited, stats: DispatchStats) -> None:
        """429: block the channel for every process, keep the alerts pending until then (no attempt used)."""
        delay_ms = max(1, int(e.delay_s * 1000))
        await self.redis.register_script(_BLOCK)(keys=[self.blocked], args=[delay_ms])
        for key, pending in batch:
            await self._reschedule(key, pending, delay_ms)
        stats.deferred += len(batch)
        log.warning("alert.rate_limited", channel=self.channel, retry_after_s=e.delay_s, alerts=len(batch))

    async def _retry(self, batch: Batch, e: SlackRetry, stats: DispatchStats) -> None:
        rule = self.policy.transient
        for key, pending in batch:
            attempt = pending.attempts + 1
            if attempt >= rule.max_attempts:
                await self._dead_letter(key, pending, e.reason, attempt, stats)
                continue
            delay = max(e.delay_s or 0.0, rule.ceiling(attempt))
            await self._reschedule(key, msgspec.structs.replace(pending, attempts=attempt), int(delay * 1000))
            stats.deferred += 1
            alert = pending.alert
            log.warning(
                "alert.retry",
                call_id=alert.call_id,
                reason=alert.reason,
                attempt=attempt,
                error=e.reason,
                delay_s=delay,
                channel=self.channel,
            )

    async def _dead_letter(self, key: str, pending: Pending, reason: str, attempts: int, stats: DispatchStats) -> None:
        """Dead-letter first, then forget: a crash in between repeats the dead letter, never loses it."""
        alert = pending.alert
        await dead_letter(
            self.redis,
            self.dead_stream,
            kind="slack_alert",
            reason=reason,
            attempts=attempts,
            payload=encode_alert(alert),
            call_id=alert.call_id,
        )
        await self._remove([key])
        stats.dead_lettered += 1

    async def _reschedule(self, key: str, pending: Pending, in_ms: int) -> None:
        script = self.redis.register_script(_RESCHEDULE)
        await script(keys=[self.due, self.data], args=[key, in_ms, encode_pending(pending)])

    async def _remove(self, keys: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.due, *keys)
            pipe.hdel(self.data, *keys)
            await pipe.execute()


async def dispatch_pending(
    redis: Redis,
    sender: Sender,
    *,
    digest_threshold: int,
    dead_letter_stream: str,
    channel_key: str | None = None,
    max_messages: int | None = None,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    sleep: Sleep = asyncio.sleep,
    stop: asyncio.Event | None = None,
) -> DispatchStats:
    """Sends what is due now, pacing on the shared gate, and returns what happened.

    More than `digest_threshold` alerts due at once go out as ONE digest; fewer go one per message.
    Alerts put back for later (429, transient errors) count as deferred and are not waited for here.
    """
    dispatcher = _Dispatcher(
        redis,
        sender,
        channel_key=channel_key or sender.channel_key,
        digest_threshold=digest_threshold,
        dead_letter_stream=dead_letter_stream,
        policy=policy,
        sleep=sleep,
    )
    return await dispatcher.drain(max_messages, stop)


async def redis_now_ms(redis: Redis) -> int:
    """Redis's clock, the one every due time is measured against."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def next_due_in(redis: Redis, *, policy: DeliveryPolicy = DEFAULT_POLICY) -> float | None:
    """Seconds until the earliest pending alert is due (0 if now), None when nothing is pending."""
    first: list[Any] = await redis.zrange(pending_keys(policy.prefix)[0], 0, 0, withscores=True)
    return max(0.0, (first[0][1] - await redis_now_ms(redis)) / 1000) if first else None


async def run_dispatcher(
    redis: Redis,
    sender: Sender,
    *,
    stop: asyncio.Event,
    digest_threshold: int,
    dead_letter_stream: str,
    channel_key: str | None = None,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    poll_s: float = 0.5,
) -> None:
    """Runs until `stop` is set: drain, then sleep until the next alert is due (at most `poll_s`).

    Run one per worker process as a background task; the Redis gate keeps the total at 1/s/channel.
    """

    async def nap(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    channel = channel_key or sender.channel_key
    while not stop.is_set():
        due_in: float | None = poll_s
        try:
            await dispatch_pending(
                redis,
                sender,
                digest_threshold=digest_threshold,
                dead_letter_stream=dead_letter_stream,
                channel_key=channel,
                policy=policy,
                sleep=nap,
                stop=stop,
            )
            due_in = await next_due_in(redis, policy=policy)
        except (RedisError, OSError) as e:
            log.warning("alert.dispatcher_redis_error", error=type(e).__name__, channel=channel)
        except Exception:  # a bug: say so loudly, keep the other alerts flowing
            log.error("alert.dispatcher_failed", exc_info=True, channel=channel)
        await nap(poll_s if due_in is None else min(poll_s, due_in))
