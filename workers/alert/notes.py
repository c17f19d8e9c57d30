"""Notes: a call's transcript summary, replied in the thread of the Slack alert already sent about it.

    wavix.call.transcribed ──> queue_note ──> notes due (ZSET) + data (HASH) ──> dispatch_notes ──> chat.postMessage
      (workers/process.py)     once per call     only if the call has an       through the channel's   with thread_ts
                                                 alert pending or sent         gate (gate.py)

A thread reply rather than `chat.update` of the alert: one way for a single alert and for a digest (many
calls in one message, each reply naming its call); append-only, so two transcripts of calls in the same
digest cannot overwrite each other's edit, and the alert keeps saying what was known when it went out.

The alert must be out first: a note whose alert is still pending (queued, retrying, in flight) waits
`note_recheck_s` and looks again; once the alert's ack has kept its `channel ts` (`{prefix}alert_ts:{call_id}`,
workers/alert/outbox.py), the note is claimed like an alert (a lease, then ack), retried on the same
schedule and dead-lettered (`slack_note`) on a permanent error such as a deleted parent. A note whose alert
is neither pending nor remembered (dead-lettered, or older than `thread_ttl_s`) is dropped with a log line.

Only the bot API can do this: an incoming webhook answers `ok` with no `ts`, so its messages cannot be found
again (workers/alert/slack.py `can_thread`). The Redis keys are named in workers/alert/rules.py.
"""

from __future__ import annotations

import asyncio
from typing import get_args

import msgspec
from redis.asyncio import Redis

from contract import logs
from contract.events import CallTranscribedEvent
from workers.alert.channel import Sender
from workers.alert.errors import ChannelPermanent, ChannelRateLimited, ChannelRetry
from workers.alert.gate import NOW, RESCHEDULE, Gate, redis_now_ms, stopped
from workers.alert.rules import (
    DeliveryPolicy,
    DispatchStats,
    Note,
    Reason,
    decode_note,
    encode_note,
    note_keys,
    pending_keys,
    render_note,
    retry_decision,
    thread_key,
)
from workers.alert.slack import can_thread
from workers.deadletter import dead_letter

log = logs.get("workers.alert.notes")

_REASONS: tuple[str, ...] = get_args(Reason)
# Queue once per call (KEYS[1] the mark), and only when the alert is remembered (KEYS[4]) or pending
# (one of ARGV[4..] in the alerts' HASH KEYS[5]): 1 queued, 0 nothing to reply to, -1 already queued.
_QUEUE = NOW + """
local alerted = redis.call('EXISTS', KEYS[4]) == 1
for i = 4, #ARGV do alerted = alerted or redis.call('HEXISTS', KEYS[5], ARGV[i]) == 1 end
if not alerted then return 0 end
if not redis.call('SET', KEYS[1], now, 'NX', 'EX', ARGV[1]) then return -1 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[2])
return 1
"""
# One due note (ARGV[1]): 'send' with its record and `channel ts` (claimed for ARGV[3] ms when ARGV[2] is
# 'claim'), 'wait' (its alert is pending: due again in ARGV[4] ms), 'orphan' (dropped), or 'none'.
_LOOK = NOW + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > now then return {'none'} end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then redis.call('ZREM', KEYS[1], ARGV[1]) return {'none'} end
local where = redis.call('GET', KEYS[3])
if where then
  if ARGV[2] == 'claim' then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1]) end
  return {'send', rec, where}
end
for i = 5, #ARGV do
  if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
    return {'wait'}
  end
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return {'orphan', rec}
"""


def note_for(event: CallTranscribedEvent) -> Note | None:
    """The note a transcribed event makes, None when it has no summary to tell."""
    data = event.data
    summary = (data.summary or "").strip()
    if not summary:
        return None
    return Note(call_id=data.call_id, summary=summary, from_number=data.from_.number or "",
                to_number=data.to.number or "")


def _pending_ids(call_id: str) -> list[str]:
    return [f"{call_id}:{reason}" for reason in _REASONS]  # the alerts' keys (rules.Alert.key)


async def queue_note(redis: Redis, note: Note, *, policy: DeliveryPolicy) -> bool:
    """Queues the note, due now; False when the call has no alert to reply to or already has its note."""
    due, data = note_keys(policy.prefix)
    mark = f"{policy.prefix}alert_noted:{note.call_id}"
    record = encode_note(msgspec.structs.replace(note, queued_at_ms=await redis_now_ms(redis)))
    keys = [mark, due, data, thread_key(note.call_id, policy.prefix), pending_keys(policy.prefix)[1]]
    args: list[bytes | str | int] = [policy.alerted_ttl_s, note.call_id, record, *_pending_ids(note.call_id)]
    outcome = int(await redis.register_script(_QUEUE)(keys=keys, args=args))
    event = {1: "alert.note_queued", 0: "alert.note_unneeded", -1: "alert.note_duplicate"}[outcome]
    log.info(event, call_id=note.call_id)
    return outcome == 1


async def note_transcript(redis: Redis, sender: Sender | None, event: CallTranscribedEvent, *,
                          policy: DeliveryPolicy) -> bool:
    """The hook after a `wavix.call.transcribed` is delivered: queues its summary for the alert's thread,
    when there is a summary, an alert, and a bot token (a webhook's alerts cannot be found again)."""
    note = note_for(event)
    if note is None or not can_thread(sender):
        return False
    return await queue_note(redis, note, policy=policy)


class _Notes:
    """One pass over the due notes of one channel, on the gate the alerts use."""

    def __init__(self, redis: Redis, sender: Sender, gate: Gate, dead_stream: str, policy: DeliveryPolicy,
                 stats: DispatchStats) -> None:
        self.redis, self.sender, self.gate, self.dead_stream = redis, sender, gate, dead_stream
        self.policy, self.stats = policy, stats
        self.due, self.data = note_keys(policy.prefix)

    async def look(self, call_id: str, mode: str) -> list[bytes]:
        keys = [self.due, self.data, thread_key(call_id, self.policy.prefix), pending_keys(self.policy.prefix)[1]]
        args: list[str | int] = [call_id, mode, int(self.policy.lease_s * 1000),
                                 int(self.policy.note_recheck_s * 1000), *_pending_ids(call_id)]
        return list(await self.redis.register_script(_LOOK)(keys=keys, args=args))

    async def drain(self, limit: int | None, stop: asyncio.Event | None) -> None:
        sent = 0
        while not stopped(stop) and (limit is None or sent < limit):
            ids = await self.redis.zrangebyscore(self.due, "-inf", await redis_now_ms(self.redis), start=0, num=20)
            if not ids:
                return
            for call_id in (raw.decode() for raw in ids):
                peeked = await self.look(call_id, "peek")
                if peeked[0] == b"orphan":
                    log.info("alert.note_dropped", call_id=call_id, why="its alert is neither pending nor remembered")
                if peeked[0] != b"send":
                    continue  # waiting for its alert, or dropped: no message, no slot spent
                if not await self.gate.wait(stop) or (limit is not None and sent >= limit):
                    return
                found = await self.look(call_id, "claim")
                if found[0] == b"send":
                    sent += 1
                    await self.send(call_id, found[1], found[2].decode())

    async def send(self, call_id: str, record: bytes, where: str) -> None:
        try:
            note = decode_note(record)
        except msgspec.DecodeError as e:
            await self.dead(call_id, record, f"undecodable note record: {e}", 0)
            return
        channel, _, ts = where.partition(" ")
        try:
            await self.sender.send({**render_note(note), "channel": channel, "thread_ts": ts})
        except ChannelRateLimited as e:
            await self.gate.block(max(1, int(e.delay_s * 1000)))
            await self.reschedule(note, max(1, int(e.delay_s * 1000)))
            self.stats.deferred += 1
        except ChannelRetry as e:
            await self.retry(note, e)
        except ChannelPermanent as e:
            await self.dead(call_id, encode_note(note), e.reason, note.attempts + 1)
        else:
            await self.forget(call_id)
            self.stats.noted += 1
            log.info("alert.noted", call_id=call_id, attempt=note.attempts + 1, channel=self.sender.channel_key)

    async def retry(self, note: Note, e: ChannelRetry) -> None:
        attempt = note.attempts + 1
        age_s = max(0.0, (await redis_now_ms(self.redis) - note.queued_at_ms) / 1000)
        decision = retry_decision(self.policy, e.reason, attempt, age_s, e.delay_s)
        if not decision.retry:
            await self.dead(note.call_id, encode_note(note), e.reason, attempt)
            return
        await self.reschedule(msgspec.structs.replace(note, attempts=attempt), int(decision.delay * 1000))
        self.stats.deferred += 1
        log.warning("alert.note_retry", call_id=note.call_id, attempt=attempt, error=e.reason, delay_s=decision.delay)

    async def reschedule(self, note: Note, in_ms: int) -> None:
        script = self.redis.register_script(RESCHEDULE)
        await script(keys=[self.due, self.data], args=[note.call_id, in_ms, encode_note(note)])

    async def dead(self, call_id: str, payload: bytes, reason: str, attempts: int) -> None:
        """Dead-letter first, then forget: a crash in between repeats the dead letter, never loses it."""
        await dead_letter(self.redis, self.dead_stream, kind="slack_note", reason=reason, attempts=attempts,
                          payload=payload, call_id=call_id, retention_s=self.policy.dead_letter_retention_s)
        await self.forget(call_id)
        self.stats.dead_lettered += 1

    async def forget(self, call_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.due, call_id)
            pipe.hdel(self.data, call_id)
            await pipe.execute()


async def dispatch_notes(
    redis: Redis,
    sender: Sender,
    gate: Gate,
    *,
    dead_letter_stream: str,
    policy: DeliveryPolicy,
    stats: DispatchStats,
    limit: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Replies what is due in the alerts' threads (at most `limit` messages), counting into `stats`."""
    await _Notes(redis, sender, gate, dead_letter_stream, policy, stats).drain(limit, stop)
