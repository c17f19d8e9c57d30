"""The Slack outbox's decisions are shared through Redis: its clock, a poison record, a rate-limit pause.

Real Redis, the Slack stand-in on loopback (sandbox/slack.py); each test has its own key prefix.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from sandbox.slack import Answer, SlackStandIn, serve
from tests.test_alerts import make_alert
from workers.alert.outbox import dispatch_pending, queue_alert
from workers.alert.rules import DeliveryPolicy, Message, pending_keys
from workers.alert.slack import BotSender
from workers.deadletter import list_dead


@pytest.fixture
async def policy(redis: Redis) -> AsyncIterator[DeliveryPolicy]:
    prefix = f"test:outbox:{uuid.uuid4().hex}:"
    yield DeliveryPolicy(prefix=prefix, min_interval_s=0.01)
    keys = [key async for key in redis.scan_iter(match=prefix + "*", count=10_000)]
    if keys:
        await redis.delete(*keys)


class Recorder:
    """A Sender that records messages; `hold` makes each send wait until released (a slow Slack)."""

    channel_key = "recorder"

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.sent: list[Message] = []
        self.started = asyncio.Event()
        self.hold = hold

    async def send(self, message: Message) -> None:
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        self.sent.append(message)


async def test_a_claimed_alert_is_not_claimed_again_by_a_worker_whose_clock_is_fast(
    redis: Redis, policy: DeliveryPolicy
) -> None:
    """Due times and leases are read against Redis's clock (TIME), never a worker's own: while one worker
    is sending an alert, another does not send it too. (The outbox takes no clock any more; handed one
    running 90 s fast, beyond the 60 s lease, the second dispatcher used to send the alert again.)"""
    await queue_alert(redis, make_alert(), policy=policy)
    release = asyncio.Event()
    slow = Recorder(hold=release)
    dead = policy.prefix + "dead"
    first = asyncio.create_task(dispatch_pending(redis, slow, digest_threshold=5, dead_letter_stream=dead,
                                                 policy=policy))
    await slow.started.wait()
    other = Recorder()
    await dispatch_pending(redis, other, digest_threshold=5, dead_letter_stream=dead, policy=policy)
    release.set()
    await first
    assert (len(slow.sent), len(other.sent)) == (1, 0)


async def test_an_undecodable_record_is_dead_lettered_and_the_rest_of_its_batch_goes_out(
    redis: Redis, policy: DeliveryPolicy
) -> None:
    """One record that no longer decodes (written by another version, damaged) is set aside as a
    `slack_alert` dead letter naming the decode error; the alerts claimed with it are still sent."""
    alerts = [make_alert(n) for n in range(1, 4)]
    for alert in alerts:
        await queue_alert(redis, alert, policy=policy)
    _, data = pending_keys(policy.prefix)
    await redis.hset(data, alerts[1].key, b"\xc1 not msgpack")
    sender, dead = Recorder(), policy.prefix + "dead"
    await dispatch_pending(redis, sender, digest_threshold=1, dead_letter_stream=dead, policy=policy)
    [digest] = sender.sent
    text = msgspec.json.encode(digest).decode()
    assert alerts[0].call_id in text and alerts[2].call_id in text and alerts[1].call_id not in text
    [letter] = await list_dead(redis, dead)
    assert letter.kind == "slack_alert" and "undecodable" in letter.reason and letter.payload == b"\xc1 not msgpack"
    assert await redis.zcard(pending_keys(policy.prefix)[0]) == 0


async def test_a_bot_api_ratelimited_answer_pauses_the_channel_for_every_worker(
    redis: Redis, policy: DeliveryPolicy
) -> None:
    """`ok: false, error: ratelimited` (HTTP 200) from chat.postMessage blocks the channel in Redis for
    Retry-After, as a 429 does: the pause is stored where every worker reads it, and no attempt is used."""
    standin = SlackStandIn()
    body = msgspec.json.encode({"ok": False, "error": "ratelimited"})
    standin.script(Answer(200, body, "application/json", headers=(("retry-after", "30"),)))
    await queue_alert(redis, make_alert(), policy=policy)
    async with serve(standin) as url, httpx.AsyncClient() as http:
        bot = BotSender(http, f"{url}/api", standin.bot_token, "#alerts")
        stats = await dispatch_pending(redis, bot, digest_threshold=5, dead_letter_stream=policy.prefix + "dead",
                                       policy=policy)
    assert stats.deferred == 1 and len(standin.received) == 1
    assert await redis.pttl(f"{policy.prefix}slack:blocked:#alerts") > 20_000


async def test_an_alert_the_channel_took_is_not_sent_again_when_redis_drops_the_acknowledgement(
    redis: Redis, policy: DeliveryPolicy
) -> None:
    """Slack answers 2xx, and Redis goes away in that moment (a failover): the outbox waits the outage out
    and then forgets the alert, rather than leaving it claimed to be sent a second time when its claim runs
    out (`make chaos-ha` found a digest of 7 alerts sent twice this way)."""
    from tests.helpers.sinks import TcpProxy

    proxy = await TcpProxy("127.0.0.1", 6379).start()
    through = Redis(port=proxy.port, socket_timeout=2)
    await queue_alert(redis, make_alert(), policy=policy)

    class CutAfterSending(Recorder):
        async def send(self, message: Message) -> None:
            await super().send(message)
            await proxy.cut()  # the answer is in: now the acknowledgement finds no Redis
            asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(proxy.restore()))

    sender = CutAfterSending()
    try:
        await asyncio.wait_for(dispatch_pending(through, sender, digest_threshold=5,
                                                dead_letter_stream=policy.prefix + "dead", policy=policy), 20)
    finally:
        await through.aclose()
        await proxy.cut()
    due, data = pending_keys(policy.prefix)
    assert len(sender.sent) == 1
    assert (await redis.zcard(due), await redis.hlen(data)) == (0, 0)
