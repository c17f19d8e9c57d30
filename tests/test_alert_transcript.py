"""Slack alerts that learn the transcript, and the Slack retry schedule.

Real Redis (own key prefixes, cleaned up), the Slack stand-in over HTTP, and the real arq worker for the hook
in workers/process.py. The schedule's decisions are tested with explicit attempts and ages, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from contract.errors import SettingsError
from contract.events import TRANSCRIBED
from contract.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.slack import SlackStandIn, api_error, channel_id, serve
from tests.pipeline import by_type, pipeline
from tests.test_alerts import make_alert
from workers.alert.config import policy_from_settings, slack_schedule
from workers.alert.notes import queue_note
from workers.alert.outbox import dispatch_pending, queue_alert
from workers.alert.rules import (
    DeliveryPolicy,
    Note,
    decode_note,
    encode_note,
    escape,
    note_keys,
    pending_keys,
    retry_decision,
    thread_key,
)
from workers.alert.slack import BotSender, WebhookSender
from workers.operate.dlq import replay
from workers.retry import Schedule

CHANNEL = "#alerts"


@pytest.fixture
async def policy(redis: Redis) -> AsyncIterator[DeliveryPolicy]:
    prefix = f"test:transcript:{uuid.uuid4().hex}:"
    yield DeliveryPolicy(prefix=prefix, min_interval_s=0.01, note_recheck_s=0.05,
                         retry=Schedule(delays=(0.05, 0.05), jitter=0.0))
    keys = [key async for key in redis.scan_iter(match=prefix + "*", count=10_000)]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def slack() -> AsyncIterator[tuple[SlackStandIn, BotSender]]:
    standin = SlackStandIn(enforce_rate=False)
    async with serve(standin) as url, httpx.AsyncClient(timeout=5.0) as http:
        yield standin, BotSender(http, f"{url}/api", standin.bot_token, CHANNEL)


def note(n: int, summary: str = "Customer wants a callback tomorrow.") -> Note:
    alert = make_alert(n)
    return Note(call_id=alert.call_id, summary=summary, from_number=alert.from_number, to_number=alert.to_number)


async def flush(redis: Redis, sender: BotSender, policy: DeliveryPolicy, threshold: int = 5) -> None:
    await dispatch_pending(redis, sender, digest_threshold=threshold, dead_letter_stream=policy.prefix + "dead",
                           policy=policy)


def top_level(standin: SlackStandIn) -> list[dict[str, object]]:
    return [r.message for r in standin.accepted() if "thread_ts" not in r.message]


# ── The retry schedule: decisions on explicit attempts and ages ──

def test_default_slack_schedule_spans_hours_then_gives_up() -> None:
    """The default Slack schedule waits 5s, 30s, 2m, 10m, 30m, 2h after tries 1..6 (no jitter) and gives up
    after the 7th, about 2 h 43 min after the first: hours, not the deliveries' day."""
    policy = DeliveryPolicy()
    waits = [retry_decision(policy, "rollup_error", n, age_s=0.0).delay for n in range(1, 7)]
    assert waits == [5.0, 30.0, 120.0, 600.0, 1800.0, 7200.0]
    assert not retry_decision(policy, "rollup_error", 7, age_s=9780.0).retry
    assert policy.retry.span == 9755.0


def test_retry_after_from_slack_is_never_undercut() -> None:
    """A transient error that says Retry-After 90 s after the first try waits 90 s, not the schedule's 5 s."""
    decision = retry_decision(DeliveryPolicy(), "service_unavailable", 1, age_s=0.0, retry_after=90.0)
    assert decision.retry and decision.delay == 90.0


def test_slack_retry_schedule_is_read_by_the_destinations_parser() -> None:
    """SLACK_RETRY_SCHEDULE goes through workers/retry.py's parse_duration and Schedule: `1m,1h30m` is 60 s
    then 5400 s; the default setting gives the default schedule; a bad value names the variable."""
    settings = Settings.from_env({"SLACK_RETRY_SCHEDULE": "1m, 1h30m", "TRANSCRIPT_WAIT": "600"})
    policy = policy_from_settings(settings, None)
    assert policy.retry.delays == (60.0, 5400.0) and policy.thread_ttl_s == 600 + 5460
    assert slack_schedule(Settings().slack_retry_schedule) == DeliveryPolicy().retry
    with pytest.raises(SettingsError) as error:
        slack_schedule(("5s", "soon"))
    assert error.value.variable == "SLACK_RETRY_SCHEDULE"


async def test_a_transient_alert_failure_waits_as_the_schedule_says(
    redis: Redis, policy: DeliveryPolicy, slack: tuple[SlackStandIn, BotSender]
) -> None:
    """An alert refused with internal_error is put back `schedule[0]` later by Redis's clock, with one
    attempt spent; the schedule configured in the policy decides, not a backoff of the outbox's own."""
    standin, bot = slack
    slow = msgspec.structs.replace(policy, retry=Schedule(delays=(300.0,), jitter=0.0))
    standin.script(api_error("internal_error"))
    await queue_alert(redis, make_alert(1), policy=slow)
    stats = await dispatch_pending(redis, bot, digest_threshold=5, dead_letter_stream=slow.prefix + "dead",
                                   policy=slow)
    [(_, due_ms)] = await redis.zrange(pending_keys(slow.prefix)[0], 0, -1, withscores=True)
    seconds, micros = await redis.time()
    assert stats.deferred == 1 and 295_000 < due_ms - (seconds * 1000 + micros // 1000) <= 300_000


# ── Transcript replies in the alert's thread ──

async def test_transcript_is_replied_in_the_alerts_thread_once(
    redis: Redis, policy: DeliveryPolicy, slack: tuple[SlackStandIn, BotSender]
) -> None:
    """With a bot token the alert's channel and ts are kept; the call's transcript summary then goes to that
    thread (chat.postMessage with thread_ts), naming the call; a second transcript for it queues nothing."""
    standin, bot = slack
    await queue_alert(redis, make_alert(1), policy=policy)
    await flush(redis, bot, policy)
    where = (await redis.get(thread_key("call-0001", policy.prefix))).decode()
    channel, ts = where.split()
    assert channel == channel_id(CHANNEL) and await redis.ttl(thread_key("call-0001", policy.prefix)) > 0
    assert await queue_note(redis, note(1, "Wants a <!channel> refund"), policy=policy)
    assert not await queue_note(redis, note(1, "again"), policy=policy)
    await flush(redis, bot, policy)
    [reply] = standin.thread(channel, ts)
    text = reply.message["blocks"][0]["text"]["text"]
    assert "`call-0001`" in text and "&lt;!channel&gt; refund" in text and reply.message["channel"] == channel
    assert len(standin.accepted()) == 2 and await redis.zcard(note_keys(policy.prefix)[0]) == 0


async def test_each_call_of_a_digest_gets_its_reply_in_the_digests_thread(
    redis: Redis, policy: DeliveryPolicy, slack: tuple[SlackStandIn, BotSender]
) -> None:
    """Six alerts due at once go out as one digest; two of those calls' transcripts are replied in the
    digest's thread, each naming its own call."""
    standin, bot = slack
    for n in range(6):
        await queue_alert(redis, make_alert(n), policy=policy)
    await flush(redis, bot, policy)
    [digest] = standin.accepted()
    assert "6 call alerts" in digest.message["text"]
    await queue_note(redis, note(2, "two"), policy=policy)
    await queue_note(redis, note(4, "four"), policy=policy)
    await flush(redis, bot, policy)
    ts = (await redis.get(thread_key("call-0002", policy.prefix))).decode().split()[1]
    replies = [r.message["blocks"][0]["text"]["text"] for r in standin.thread(CHANNEL, ts)]
    assert sorted(replies) == sorted([next(t for t in replies if "`call-0002`" in t and "two" in t),
                                      next(t for t in replies if "`call-0004`" in t and "four" in t)])


async def test_a_reply_waits_for_its_alert_still_pending(
    redis: Redis, policy: DeliveryPolicy, slack: tuple[SlackStandIn, BotSender]
) -> None:
    """A transcript that comes while its alert is still being retried waits: no reply goes out before the
    alert, and once the alert is out the reply lands in its thread."""
    standin, bot = slack
    standin.script(api_error("internal_error"))
    await queue_alert(redis, make_alert(3), policy=policy)
    await flush(redis, bot, policy)  # the alert failed: pending, retried later
    assert await queue_note(redis, note(3), policy=policy)
    await flush(redis, bot, policy)
    assert standin.accepted() == [] and await redis.zcard(note_keys(policy.prefix)[0]) == 1
    for _ in range(50):
        await asyncio.sleep(0.05)
        await flush(redis, bot, policy)
        if len(standin.accepted()) == 2:
            break
    alert, reply = standin.accepted()
    assert "thread_ts" not in alert.message and reply.message["thread_ts"] == \
        (await redis.get(thread_key("call-0003", policy.prefix))).decode().split()[1]


async def test_no_reply_without_an_alert(redis: Redis, policy: DeliveryPolicy) -> None:
    """A transcript of a call that was never alerted (or whose alert is long forgotten) queues nothing."""
    assert not await queue_note(redis, note(9), policy=policy)
    assert await redis.zcard(note_keys(policy.prefix)[0]) == 0


async def test_a_reply_to_a_deleted_alert_is_dead_lettered(
    redis: Redis, policy: DeliveryPolicy, slack: tuple[SlackStandIn, BotSender]
) -> None:
    """Slack refusing the reply for good (the alert was deleted: thread_not_found) dead-letters the note as
    `slack_note` with its summary; nothing is retried."""
    standin, bot = slack
    await queue_alert(redis, make_alert(5), policy=policy)
    await flush(redis, bot, policy)
    channel, ts = (await redis.get(thread_key("call-0005", policy.prefix))).decode().split()
    standin.forget(channel, ts)
    await queue_note(redis, note(5, "gone"), policy=policy)
    await flush(redis, bot, policy)
    [(_, fields)] = await redis.xrange(policy.prefix + "dead")
    assert (fields[b"kind"], fields[b"reason"]) == (b"slack_note", b"thread_not_found")
    assert decode_note(fields[b"payload"]).summary == "gone"
    assert [r.error for r in standin.received] == ["", "thread_not_found"]


async def test_a_transient_reply_failure_is_retried_then_delivered(
    redis: Redis, policy: DeliveryPolicy, slack: tuple[SlackStandIn, BotSender]
) -> None:
    """A reply refused with a transient error (internal_error) is retried on the schedule and delivered."""
    standin, bot = slack
    await queue_alert(redis, make_alert(6), policy=policy)
    await flush(redis, bot, policy)
    await queue_note(redis, note(6), policy=policy)
    standin.script(api_error("internal_error"))
    await flush(redis, bot, policy)
    await asyncio.sleep(0.1)
    await flush(redis, bot, policy)
    assert [("internal_error" in r.error, r.status) for r in standin.received] == [(False, 200), (True, 200),
                                                                                   (False, 200)]
    assert "thread_ts" in standin.received[-1].message and await redis.xlen(policy.prefix + "dead") == 0


# ── The hook in the real worker ──

def _transcribed_config() -> SandboxConfig:
    return SandboxConfig(seed=3, transcript_share=1.0, transcript_failed_share=0.0, machine_share=0.0)


async def test_worker_replies_an_alerted_calls_transcript_in_its_thread() -> None:
    """With a bot token, the real worker's transcript job queues the summary of an alerted call, and it goes
    out in the alert's thread; answered calls that were not alerted get nothing in Slack."""
    async with pipeline(_transcribed_config()) as p:
        calls, _ = await p.place_and_send(10)
        answered = [c for c in calls if c.disposition == "answered"]
        assert len(answered) >= 2, "the seed should give answered calls"
        base = p.settings.slack_webhook_url.split("/services/")[0]
        p = await p.with_settings(SLACK_BOT_TOKEN=p.slack.bot_token, SLACK_CHANNEL=CHANNEL, SLACK_API_URL=base + "/api")
        policy = policy_from_settings(p.settings, None)
        await queue_alert(p.redis, make_alert(1, call_id=answered[0].call_id, reason="machine"), policy=policy)
        await p.run_worker()
        summary = by_type(await p.events(), TRANSCRIBED)[answered[0].call_id][0].data.summary
        async with httpx.AsyncClient() as http:
            await flush(p.redis, BotSender(http, base + "/api", p.slack.bot_token, CHANNEL), policy)
        call_id = answered[0].call_id
        assert len([m for m in top_level(p.slack) if call_id in str(m["text"])]) == 1  # its alert, once
        [reply] = [r for r in p.slack.accepted() if "thread_ts" in r.message]
        where = (await p.redis.get(thread_key(call_id, policy.prefix))).decode()
        assert summary and reply.message["thread_ts"] == where.split()[1]
        text = reply.message["blocks"][0]["text"]["text"]
        assert f"`{call_id}`" in text and escape(summary)[:40] in text
        others = {c.call_id for c in answered[1:]}
        assert not any(other in str(r.message) for r in p.slack.accepted() for other in others)


async def test_with_a_webhook_transcripts_leave_slack_alone_and_startup_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An incoming webhook answers no ts, so its alerts cannot be found again: the worker logs that once at
    startup (naming the fix, a bot token) and its transcripts queue no reply."""
    caplog.set_level(logging.INFO)
    async with pipeline(_transcribed_config()) as p:
        calls, _ = await p.place_and_send(10)
        answered = [c for c in calls if c.disposition == "answered"]
        policy = DeliveryPolicy(prefix=p.settings.key_prefix)
        await queue_alert(p.redis, make_alert(1, call_id=answered[0].call_id, reason="machine"), policy=policy)
        await p.run_worker()
        assert answered[0].call_id in by_type(await p.events(), TRANSCRIBED)
        off = [r for r in caplog.records if r.getMessage() == "alert.transcript_replies_off"]
        assert len(off) == 1 and "SLACK_BOT_TOKEN" in str(getattr(off[0], "fields", {}))
        assert await p.redis.zcard(note_keys(p.settings.key_prefix)[0]) == 0
        async with httpx.AsyncClient() as http:
            hook = WebhookSender(http, p.settings.slack_webhook_url)
            await dispatch_pending(p.redis, hook, digest_threshold=5, dead_letter_stream=p.settings.dead_letter_stream,
                                   policy=policy)
        messages = [r.message for r in p.slack.accepted()]
        assert any(answered[0].call_id in m["text"] for m in messages)  # the alert went out, by the webhook
        assert not any("thread_ts" in m or "Transcript summary" in m["text"] for m in messages)


async def test_a_dead_lettered_reply_replays_into_the_thread(
    redis: Redis, policy: DeliveryPolicy, slack: tuple[SlackStandIn, BotSender]
) -> None:
    """`dlq replay` of a `slack_note` letter queues the reply again past its once-per-call mark; once Slack
    takes it, it lands in the alert's thread and the letter is gone."""
    standin, bot = slack
    await queue_alert(redis, make_alert(6), policy=policy)
    await flush(redis, bot, policy)
    channel, ts = (await redis.get(thread_key("call-0006", policy.prefix))).decode().split()
    await redis.xadd(policy.prefix + "dead", {"kind": "slack_note", "reason": "thread_not_found", "attempts": 1,
                                              "call_id": "call-0006", "payload": encode_note(note(6, "late")),
                                              "failed_at_ms": 0})
    await redis.set(f"{policy.prefix}alert_noted:call-0006", "1")
    [(entry_id, _)] = await redis.xrange(policy.prefix + "dead")
    arq = ArqRedis(connection_pool=redis.connection_pool)
    done = await replay(arq, policy.prefix + "dead", entry_id.decode(), queue_name=f"{policy.prefix}q",
                        key_prefix=policy.prefix)
    assert "transcript reply" in done and await redis.xlen(policy.prefix + "dead") == 0
    await flush(redis, bot, policy)
    replies = standin.thread(channel, ts)
    assert len(replies) == 1 and "late" in str(replies[0])


async def test_without_slack_the_worker_says_once_at_start_that_alerts_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No Slack configured: the worker logs `alert.off` once when it starts (naming the settings that would
    turn alerts on, and that they are dropped, not kept), queues no alert, and logs no warning per call."""
    caplog.set_level(logging.INFO)
    async with pipeline(_transcribed_config(), SLACK_WEBHOOK_URL="") as p:
        await p.place_and_send(10)
        await p.run_worker()
        events = await p.events()
        assert any(e.data.alert_reasons for e in events if e.type == "wavix.call.completed")  # alerts were due
        off = [r for r in caplog.records if r.getMessage() == "alert.off"]
        assert len(off) == 1 and "SLACK_WEBHOOK_URL" in str(getattr(off[0], "fields", {}))
        assert "dropped" in str(getattr(off[0], "fields", {}))
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "alert" in r.getMessage()
                    and r.getMessage() != "alert.off"]
        assert await p.redis.keys(f"{p.settings.key_prefix}alert*") == []
