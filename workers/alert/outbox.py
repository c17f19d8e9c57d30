"""Outbox: alerts sent once per call, reason and channel, paced per channel, and never lost, whatever the channel.

    queue_alert ──> due (ZSET, score = when) + data (HASH) ──> dispatch_pending ──> Channel.sender.send
                    claim = move the score a lease ahead      ack = ZREM + HDEL after the service's 2xx

Each channel (Slack, Teams, PagerDuty, e-mail: workers/alert/channel.py) has its own outbox, mark, gate and
dead-letter kind (`{name}_alert`), and renders its own messages; the rules below are the same for all. A bare
Slack Sender stands for Slack's channel, with the keys Slack always had.

Crash-safety: claiming an alert only pushes its score a lease (60 s) into the future; a worker that dies
before the ack leaves it to become due again, so a crash means at most a resend, never a loss. More
alerts due at once than the digest threshold go out as one digest message (workers/alert/rules.py renders).

Pacing and Redis's clock are workers/alert/gate.py's. Every decision lives in Redis: a rate-limit pause
blocks the channel for every worker, and a record that no longer decodes is set aside as a `{name}_alert`
dead letter instead of holding its whole claimed batch (up to `digest_max` alerts) in a loop of failed
claims. Transient failures follow `DeliveryPolicy.retry` (SLACK_RETRY_SCHEDULE, workers/retry.py's
`Schedule`), then the alert is dead-lettered.

When the bot API says where an alert landed, the ack also keeps `{prefix}alert_ts:{call_id}` (channel and
ts; for a digest, for each call in it) for `thread_ttl_s`, in the same transaction: the call's transcript
summary is then replied in that thread (workers/alert/notes.py, drained after the alerts).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contract import logs
from workers.alert.channel import Channel, Posted, Sender
from workers.alert.errors import ChannelPermanent, ChannelRateLimited, ChannelRetry
from workers.alert.gate import NOW, RESCHEDULE, Gate, Sleep, redis_now_ms, stopped
from workers.alert.notes import dispatch_notes
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
    note_keys,
    pending_keys,
    retry_decision,
    thread_key,
)
from workers.alert.slack import slack_channel
from workers.deadletter import dead_letter
from workers.runtime.supervise import until_answered

log = logs.get("workers.alert.outbox")

# Gate + push in one step: an alert can never be marked "alerted" without being queued.
_QUEUE = NOW + """
if ARGV[1] == '1' then redis.call('SET', KEYS[1], now, 'EX', ARGV[2])
elseif not redis.call('SET', KEYS[1], now, 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[3])
return 1
"""
# Claim what is due: one alert, or up to ARGV[3] when more than ARGV[2] wait (a digest). Claiming
# moves the score a lease (ARGV[1] ms) ahead, so a dead worker's alerts come back by themselves.
_CLAIM = NOW + """
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
async def queue_alert(
    redis: Redis,
    alert: Alert,
    *,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    force: bool = False,
    channel: str = "slack",
) -> bool:
    """Queues the alert for `channel`, due now by Redis's clock; False when this call and reason was already
    alerted there (`force` replays anyway)."""
    due, data = pending_keys(policy.prefix, channel)
    record = encode_pending(Pending(alert=alert, queued_at_ms=time.time_ns() // 1_000_000))  # for the record
    args: list[bytes | str | int] = [int(force), policy.alerted_ttl_s, alert.key, record]
    keys = [alerted_key(alert, policy.prefix, channel), due, data]
    queued = bool(await redis.register_script(_QUEUE)(keys=keys, args=args))
    log.info("alert.queued" if queued else "alert.duplicate", call_id=alert.call_id, reason=alert.reason,
             channel=channel)
    return queued


Batch = list[tuple[str, Pending]]


def _messages(batch: Batch) -> list[Batch]:
    """A claimed batch as messages: each incident alone (its own trigger and resolve), the rest as one (a
    digest when many)."""
    alone = [[item] for item in batch if item[1].alert.incident]
    rest = [item for item in batch if not item[1].alert.incident]
    return alone + ([rest] if rest else [])


class _Dispatcher:
    """One pass over the pending alerts of one channel; every decision is in Redis, shared by processes."""

    def __init__(self, redis: Redis, target: Channel, *, channel_key: str, digest_threshold: int,
                 dead_letter_stream: str, policy: DeliveryPolicy, sleep: Sleep) -> None:
        self.redis, self.target, self.sender, self.channel = redis, target, target.sender, channel_key
        self.threshold, self.dead_stream, self.policy = digest_threshold, dead_letter_stream, policy
        pace = policy.min_interval_s if target.pace_s is None else target.pace_s
        self.gate = Gate(redis, policy.prefix, channel_key, pace, sleep, service=target.name)
        self.due, self.data = pending_keys(policy.prefix, target.name)

    async def drain(self, max_messages: int | None, stop: asyncio.Event | None) -> DispatchStats:
        stats, messages = DispatchStats(), 0
        while (max_messages is None or messages < max_messages) and not stopped(stop):
            if not await self.redis.zcount(self.due, "-inf", await redis_now_ms(self.redis)):
                break
            if not await self.gate.wait(stop):
                break
            batch = await self._claim(stats)
            for i, group in enumerate(_messages(batch)):  # empty: another process took them; look again
                if i and not await self.gate.wait(stop):
                    break  # stopping: the rest of the claim comes back when its lease ends
                messages += 1
                await self._deliver(group, stats)
        return stats

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
        await dead_letter(self.redis, self.dead_stream, kind=self.target.dead_kind, reason=reason, attempts=0,
                          payload=record, call_id=call_id, retention_s=self.policy.dead_letter_retention_s)
        await self._remove([key])
        stats.dead_lettered += 1

    async def _deliver(self, batch: Batch, stats: DispatchStats) -> None:
        message = self.target.render([pending.alert for _, pending in batch])
        try:
            posted = await self.sender.send(message)
        except ChannelRateLimited as e:
            await self._rate_limited(batch, e, stats)
        except ChannelRetry as e:
            await self._retry(batch, e, stats)
        except ChannelPermanent as e:
            for key, pending in batch:
                await self._dead_letter(key, pending, e.reason, pending.attempts + 1, stats)
        else:  # the channel has them: forgetting them must outlast an outage, or they go out again
            keys = [key for key, _ in batch]
            await until_answered(lambda: self._remove(keys, posted), what="alert acknowledgement",
                                 channel=self.channel, alerts=len(keys))
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

    async def _rate_limited(self, batch: Batch, e: ChannelRateLimited, stats: DispatchStats) -> None:
        """429: block the channel for every process, keep the alerts pending until then (no attempt used)."""
        delay_ms = max(1, int(e.delay_s * 1000))
        await self.gate.block(delay_ms)
        for key, pending in batch:
            await self._reschedule(key, pending, delay_ms)
        stats.deferred += len(batch)
        log.warning("alert.rate_limited", channel=self.channel, retry_after_s=e.delay_s, alerts=len(batch))

    async def _retry(self, batch: Batch, e: ChannelRetry, stats: DispatchStats) -> None:
        """A transient failure: each alert's next try is where the schedule says, or its dead letter."""
        now_ms = await redis_now_ms(self.redis)
        for key, pending in batch:
            attempt = pending.attempts + 1
            age_s = max(0.0, (now_ms - pending.queued_at_ms) / 1000)
            decision = retry_decision(self.policy, e.reason, attempt, age_s, e.delay_s)
            if not decision.retry:
                await self._dead_letter(key, pending, e.reason, attempt, stats)
                continue
            await self._reschedule(key, msgspec.structs.replace(pending, attempts=attempt),
                                   int(decision.delay * 1000))
            stats.deferred += 1
            alert = pending.alert
            log.warning("alert.retry", call_id=alert.call_id, reason=alert.reason, attempt=attempt, error=e.reason,
                        delay_s=decision.delay, channel=self.channel)

    async def _dead_letter(self, key: str, pending: Pending, reason: str, attempts: int, stats: DispatchStats) -> None:
        """Dead-letter first, then forget: a crash in between repeats the dead letter, never loses it."""
        alert = pending.alert
        await dead_letter(self.redis, self.dead_stream, kind=self.target.dead_kind, reason=reason, attempts=attempts,
                          payload=encode_alert(alert), call_id=alert.call_id,
                          retention_s=self.policy.dead_letter_retention_s)
        await self._remove([key])
        stats.dead_lettered += 1

    async def _reschedule(self, key: str, pending: Pending, in_ms: int) -> None:
        script = self.redis.register_script(RESCHEDULE)
        await script(keys=[self.due, self.data], args=[key, in_ms, encode_pending(pending)])

    async def _remove(self, keys: list[str], posted: Posted | None = None) -> None:
        """Forgets sent (or dead-lettered) alerts; with `posted`, keeps where they are for the transcript's
        reply, in the same transaction: an alert is never acked without its thread remembered."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.due, *keys)
            pipe.hdel(self.data, *keys)
            if posted is not None and self.target.threads:
                where = f"{posted.channel} {posted.ts}"
                for call_id in {key.rsplit(":", 1)[0] for key in keys}:
                    pipe.set(thread_key(call_id, self.policy.prefix), where, ex=self.policy.thread_ttl_s)
            await pipe.execute()


def _channel(target: Sender | Channel) -> Channel:
    return target if isinstance(target, Channel) else slack_channel(target)


async def dispatch_pending(
    redis: Redis,
    sender: Sender | Channel,
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
    Then, with Slack's bot API, the transcript summaries whose alert is out go to its thread (notes.py).
    """
    target = _channel(sender)
    dispatcher = _Dispatcher(redis, target, channel_key=channel_key or target.key,
                             digest_threshold=digest_threshold, dead_letter_stream=dead_letter_stream,
                             policy=policy, sleep=sleep)
    stats = await dispatcher.drain(max_messages, stop)
    if target.threads:
        left = None if max_messages is None else max_messages - stats.sent - stats.digests
        await dispatch_notes(redis, target.sender, dispatcher.gate, dead_letter_stream=dead_letter_stream,
                             policy=policy, stats=stats, limit=left, stop=stop)
    return stats


async def next_due_in(redis: Redis, *, policy: DeliveryPolicy = DEFAULT_POLICY, channel: str = "slack"
                      ) -> float | None:
    """Seconds until the channel's earliest pending alert (or Slack's transcript note) is due (0 if now), None
    when none is."""
    firsts: list[Any] = []
    dues = [pending_keys(policy.prefix, channel)[0]] + ([note_keys(policy.prefix)[0]] if channel == "slack" else [])
    for due in dues:
        firsts.extend(await redis.zrange(due, 0, 0, withscores=True))
    if not firsts:
        return None
    earliest: float = min(score for _, score in firsts)
    return max(0.0, (earliest - await redis_now_ms(redis)) / 1000)


async def run_dispatcher(
    redis: Redis,
    sender: Sender | Channel,
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

    target = _channel(sender)
    channel = channel_key or target.key
    while not stop.is_set():
        due_in: float | None = poll_s
        try:
            await dispatch_pending(redis, target, digest_threshold=digest_threshold,
                                   dead_letter_stream=dead_letter_stream, channel_key=channel, policy=policy,
                                   sleep=nap, stop=stop)
            due_in = await next_due_in(redis, policy=policy, channel=target.name)
        except (RedisError, OSError) as e:
            log.warning("alert.dispatcher_redis_error", error=type(e).__name__, channel=channel)
        except Exception:  # a bug: say so loudly, keep the other alerts flowing
            log.error("alert.dispatcher_failed", exc_info=True, channel=channel)
        await nap(poll_s if due_in is None else min(poll_s, due_in))
