"""Slack delivery against the local stand-in over real loopback HTTP, with the real Redis.

Every test uses its own Redis key prefix (and so its own gate, pending set and dead-letter stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from sandbox.slack import (
    API_PATH,
    WEBHOOK_PATH,
    Answer,
    Received,
    SlackStandIn,
    api_error,
    rate_limited,
    render_text,
    serve,
    webhook_error,
)
from tests.conftest import REDIS_URL
from tests.test_alerts import make_alert
from workers.alert.outbox import dispatch_pending, queue_alert, run_dispatcher
from workers.alert.rules import DeliveryPolicy, decode_alert, pending_keys, render_alert
from workers.alert.slack import (
    BotSender,
    SlackPermanent,
    SlackRateLimited,
    SlackRetry,
    WebhookSender,
    sender_for,
)
from workers.retry import Schedule

SECRET = "s3cr3t-webhook-path-token"
FAST_RETRY = Schedule(delays=(0.05, 0.2), jitter=0.0)  # 3 tries


@pytest.fixture
async def policy(redis: Redis) -> AsyncIterator[DeliveryPolicy]:
    prefix = f"test:slack:{uuid.uuid4().hex}:"
    yield DeliveryPolicy(prefix=prefix, retry=FAST_RETRY)
    keys = [key async for key in redis.scan_iter(match=prefix + "*", count=10_000)]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def dead(policy: DeliveryPolicy) -> str:
    return policy.prefix + "dead"


@pytest.fixture
def standin() -> SlackStandIn:
    return SlackStandIn()


@pytest.fixture
async def base_url(standin: SlackStandIn) -> AsyncIterator[str]:
    async with serve(standin) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def webhook(http: httpx.AsyncClient, base_url: str) -> WebhookSender:
    return WebhookSender(http, f"{base_url}/services/T000/B000/{SECRET}")


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Waits until `check()` (or what it returns, when awaitable) is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def dispatchers(count: int, sender: WebhookSender, policy: DeliveryPolicy, dead: str) -> AsyncIterator[None]:
    """`count` background dispatchers, each on its own Redis connection, like separate worker processes."""
    stop = asyncio.Event()
    clients = [Redis.from_url(REDIS_URL) for _ in range(count)]
    tasks = [
        asyncio.create_task(
            run_dispatcher(
                c, sender, stop=stop, digest_threshold=5, dead_letter_stream=dead, policy=policy, poll_s=0.05
            )
        )
        for c in clients
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        for c in clients:
            await c.aclose()


def gaps(received: list[Received]) -> list[float]:
    times = [r.arrived_at for r in received]
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize(
    ("answer", "error", "reason", "delay"),
    [
        (rate_limited(2), SlackRateLimited, "rate_limited", 2.0),
        (rate_limited(None), SlackRateLimited, "rate_limited", 1.0),
        (webhook_error(500, "rollup_error"), SlackRetry, "rollup_error", None),
        (webhook_error(503, ""), SlackRetry, "http_503", None),
        (webhook_error(400, "invalid_payload"), SlackPermanent, "invalid_payload", None),
        (webhook_error(403, "action_prohibited"), SlackPermanent, "action_prohibited", None),
        (webhook_error(404, "channel_not_found"), SlackPermanent, "channel_not_found", None),
        (webhook_error(410, "channel_is_archived"), SlackPermanent, "channel_is_archived", None),
    ],
)
async def test_webhook_answers_are_classified(
    standin: SlackStandIn, webhook: WebhookSender, answer: Answer, error: type[Exception], reason: str, delay: Any
) -> None:
    """Each Slack webhook answer maps to retry-after, retry-with-backoff or permanent, with Slack's reason."""
    standin.script(answer)
    with pytest.raises(error) as raised:
        await webhook.send(render_alert(make_alert()))
    assert type(raised.value) is error and raised.value.reason == reason  # type: ignore[attr-defined]
    if isinstance(raised.value, SlackRetry):
        assert raised.value.delay_s == delay
    assert SECRET not in str(raised.value) and SECRET not in repr(webhook)
    await webhook.send(render_alert(make_alert()))  # the script is used up: Slack says "ok" again


@pytest.mark.parametrize(
    ("answer", "error", "reason"),
    [
        (api_error("channel_not_found"), SlackPermanent, "channel_not_found"),
        (api_error("not_in_channel"), SlackPermanent, "not_in_channel"),
        (api_error("token_revoked"), SlackPermanent, "token_revoked"),
        (api_error("msg_too_long"), SlackPermanent, "msg_too_long"),
        (api_error("internal_error"), SlackRetry, "internal_error"),
        (api_error("ratelimited", status=429), SlackRateLimited, "ratelimited"),
    ],
)
async def test_bot_api_answers_are_classified(
    standin: SlackStandIn, http: httpx.AsyncClient, base_url: str, answer: Answer, error: type[Exception], reason: str
) -> None:
    """`chat.postMessage` answers 200 with `ok: false` for most errors: those are permanent unless transient."""
    bot = sender_for(http, bot_token="xoxb-test-token", channel="#alerts", api_url=f"{base_url}/api")
    assert isinstance(bot, BotSender)
    standin.script(answer)
    with pytest.raises(error) as raised:
        await bot.send(render_alert(make_alert()))
    assert type(raised.value) is error and raised.value.reason == reason  # type: ignore[attr-defined]
    await bot.send(render_alert(make_alert()))
    assert standin.received[-1].channel == "#alerts" and standin.received[-1].status == 200


async def test_bot_api_sends_the_bearer_token(standin: SlackStandIn, http: httpx.AsyncClient, base_url: str) -> None:
    """A wrong bot token is refused for good (`invalid_auth`); the right one posts to the channel."""
    wrong = BotSender(http, f"{base_url}/api", "xoxb-wrong", "#alerts")
    with pytest.raises(SlackPermanent, match="invalid_auth"):
        await wrong.send(render_alert(make_alert()))
    await BotSender(http, f"{base_url}/api/", "xoxb-test-token", "#alerts").send(render_alert(make_alert()))
    assert [(r.path, r.status, r.error) for r in standin.received] == [
        (API_PATH, 200, "invalid_auth"),
        (API_PATH, 200, ""),
    ]


async def test_unreachable_or_silent_slack_is_retried(http: httpx.AsyncClient) -> None:
    """Connection refused and a read timeout are transient (retry), never permanent."""
    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
        timeout_url = f"http://127.0.0.1:{silent.getsockname()[1]}{WEBHOOK_PATH}"
        refused_url = f"http://127.0.0.1:{closed.getsockname()[1]}{WEBHOOK_PATH}"
        async with httpx.AsyncClient(timeout=0.2) as quick:
            with pytest.raises(SlackRetry, match="timeout"):
                await WebhookSender(quick, timeout_url).send({"text": "x"})
        with pytest.raises(SlackRetry, match="transport_error"):
            await WebhookSender(http, refused_url).send({"text": "x"})


async def test_twenty_alerts_at_once_become_one_digest(
    redis: Redis, policy: DeliveryPolicy, dead: str, standin: SlackStandIn, webhook: WebhookSender
) -> None:
    """More alerts waiting than the digest threshold go out as ONE digest message, not 20 messages."""
    for n in range(20):
        await queue_alert(redis, make_alert(n), policy=policy)
    stats = await dispatch_pending(redis, webhook, digest_threshold=5, dead_letter_stream=dead, policy=policy)
    assert (stats.sent, stats.digests, stats.digested, stats.dead_lettered) == (0, 1, 20, 0)
    assert len(standin.received) == 1 and standin.received[0].status == 200
    assert "20 call alerts" in standin.received[0].message["blocks"][0]["text"]["text"]
    assert await redis.zcard(pending_keys(policy.prefix)[0]) == 0


async def test_rate_limit_holds_every_process_back_until_retry_after(
    redis: Redis, policy: DeliveryPolicy, dead: str, standin: SlackStandIn, webhook: WebhookSender
) -> None:
    """After a 429 with Retry-After 2, no process sends to that channel for 2 s; the alert goes out after."""
    standin.script(rate_limited(2))
    await queue_alert(redis, make_alert(1), policy=policy)
    stats = await dispatch_pending(redis, webhook, digest_threshold=5, dead_letter_stream=dead, policy=policy)
    assert (stats.sent, stats.deferred) == (0, 1)
    assert await redis.pttl(f"{policy.prefix}slack:blocked:{webhook.channel_key}") > 1500
    await queue_alert(redis, make_alert(2), policy=policy)  # due now, but the channel is blocked
    async with dispatchers(2, webhook, policy, dead):
        await until(lambda: len(standin.accepted()) == 2)
    limited, *later = standin.received
    assert limited.status == 429
    assert all(r.arrived_at - limited.arrived_at >= 1.95 for r in later)
    sent = {r.message["blocks"][1]["fields"][0]["text"] for r in standin.accepted()}
    assert sent == {"*Call*\n`call-0001`", "*Call*\n`call-0002`"}


@pytest.mark.parametrize(
    ("answer", "bot", "reason"),
    [
        (webhook_error(404, "channel_not_found"), False, "channel_not_found"),
        (webhook_error(410, "channel_is_archived"), False, "channel_is_archived"),
        (webhook_error(400, "invalid_payload"), False, "invalid_payload"),
        (api_error("channel_not_found"), True, "channel_not_found"),
        (api_error("account_inactive"), True, "account_inactive"),
    ],
)
async def test_permanent_errors_are_dead_lettered_with_slacks_reason(
    redis: Redis,
    policy: DeliveryPolicy,
    dead: str,
    standin: SlackStandIn,
    http: httpx.AsyncClient,
    base_url: str,
    answer: Answer,
    bot: bool,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A permanent Slack error dead-letters the alert at once (reason, attempts, payload) and drops it."""
    caplog.set_level(logging.DEBUG)
    url = f"{base_url}/services/T000/B000/{SECRET}"
    sender = BotSender(http, f"{base_url}/api", SECRET, "#alerts") if bot else WebhookSender(http, url)
    standin.bot_token = SECRET
    standin.script(answer)
    alert = make_alert(42)
    await queue_alert(redis, alert, policy=policy)
    stats = await dispatch_pending(redis, sender, digest_threshold=5, dead_letter_stream=dead, policy=policy)
    assert (stats.sent, stats.dead_lettered, len(standin.received)) == (0, 1, 1)
    [(_, fields)] = await redis.xrange(dead)
    assert fields[b"kind"] == b"slack_alert" and fields[b"reason"] == reason.encode()
    assert fields[b"attempts"] == b"1" and fields[b"call_id"] == b"call-0042"
    assert decode_alert(fields[b"payload"]) == alert
    assert await redis.zcard(pending_keys(policy.prefix)[0]) == 0
    assert not await queue_alert(redis, alert, policy=policy)  # still alerted once, ever
    ours = [r for r in caplog.records if r.name.startswith(("workers", "contract"))]
    assert ours and all(SECRET not in str(r.__dict__) for r in ours)
    assert not any(r.exc_info for r in caplog.records)  # expected failures: no traceback


async def test_rollup_error_is_retried_and_delivered(
    redis: Redis, policy: DeliveryPolicy, dead: str, standin: SlackStandIn, webhook: WebhookSender
) -> None:
    """A 500 rollup_error is transient: the same alert is sent again (after the gate) and delivered."""
    standin.script(webhook_error(500, "rollup_error"))
    await queue_alert(redis, make_alert(7), policy=policy)
    async with dispatchers(1, webhook, policy, dead):
        await until(lambda: len(standin.accepted()) == 1)
    assert [r.status for r in standin.received] == [500, 200]
    assert standin.received[0].message == standin.received[1].message
    assert await redis.xlen(dead) == 0 and await redis.zcard(pending_keys(policy.prefix)[0]) == 0


async def test_transient_errors_give_up_after_max_attempts(
    redis: Redis, policy: DeliveryPolicy, dead: str, standin: SlackStandIn, webhook: WebhookSender
) -> None:
    """Transient failures are retried a bounded number of times (3 here), then dead-lettered."""
    standin.script(*[webhook_error(500, "rollup_error")] * 5)
    await queue_alert(redis, make_alert(8), policy=policy)
    async with dispatchers(1, webhook, policy, dead):
        await until(lambda: redis.xlen(dead))
    [(_, fields)] = await redis.xrange(dead)
    assert (fields[b"reason"], fields[b"attempts"]) == (b"rollup_error", b"3")
    assert len(standin.received) == 3 and await redis.zcard(pending_keys(policy.prefix)[0]) == 0


async def test_several_processes_never_exceed_one_message_per_second(
    redis: Redis, policy: DeliveryPolicy, dead: str, standin: SlackStandIn, webhook: WebhookSender
) -> None:
    """Three dispatchers share the real Redis gate: 4 alerts arrive once each, about a second apart."""
    for n in range(4):
        await queue_alert(redis, make_alert(n), policy=policy)
    async with dispatchers(3, webhook, policy, dead):
        await until(lambda: len(standin.received) >= 4)
        await asyncio.sleep(0.3)  # room for a duplicate to show up, if there were one
    assert [r.status for r in standin.received] == [200] * 4  # the stand-in never had to say 429
    assert all(gap >= 0.98 for gap in gaps(standin.received))
    calls = sorted(r.message["blocks"][1]["fields"][0]["text"] for r in standin.received)
    assert calls == [f"*Call*\n`call-{n:04d}`" for n in range(4)]


class CrashingSender:
    """A sender whose process "dies" mid-send: nothing reaches Slack, nothing is acknowledged."""

    channel_key = "crash"

    async def send(self, message: dict[str, Any]) -> None:
        raise RuntimeError("worker killed")


async def test_alert_claimed_by_a_dead_worker_is_sent_later(
    redis: Redis, dead: str, standin: SlackStandIn, webhook: WebhookSender
) -> None:
    """Crash-safety: an alert taken by a worker that died comes back after the lease, never lost."""
    policy = DeliveryPolicy(prefix=f"test:slack:{uuid.uuid4().hex}:", lease_s=0.3)
    await queue_alert(redis, make_alert(3), policy=policy)
    with pytest.raises(RuntimeError):
        await dispatch_pending(redis, CrashingSender(), digest_threshold=5, dead_letter_stream=dead, policy=policy)
    stats = await dispatch_pending(redis, webhook, digest_threshold=5, dead_letter_stream=dead, policy=policy)
    assert stats.sent == 0  # still leased to the dead worker
    await asyncio.sleep(0.35)
    stats = await dispatch_pending(redis, webhook, digest_threshold=5, dead_letter_stream=dead, policy=policy)
    assert stats.sent == 1 and len(standin.accepted()) == 1
    await redis.delete(*pending_keys(policy.prefix), f"{policy.prefix}alerted:call-0003:failed")


async def test_standin_refuses_what_slack_refuses(
    standin: SlackStandIn, http: httpx.AsyncClient, base_url: str
) -> None:
    """The stand-in answers 400 invalid_blocks to a message over Block Kit limits, 429 to a second one in 1 s."""
    url = base_url + WEBHOOK_PATH
    too_big = {"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}]}
    answer = await http.post(url, json=too_big)
    assert (answer.status_code, answer.text) == (400, "invalid_blocks")
    no_fallback = {"blocks": [{"type": "divider"}]}
    assert (await http.post(url, json=no_fallback)).text == "invalid_blocks"
    assert (await http.post(url, json={"text": "first"})).text == "ok"
    second = await http.post(url, json={"text": "second"})
    assert (second.status_code, second.headers["retry-after"]) == (429, "1")


async def test_standin_prints_alerts_readably(capsys: pytest.CaptureFixture[str]) -> None:
    """With echo on, each accepted alert is printed as text: the demo shows alerts this way."""
    standin = SlackStandIn(echo=True)
    message = render_alert(make_alert(11))
    answer = standin.handle("POST", WEBHOOK_PATH, {}, msgspec.json.encode(message))
    assert answer.status == 200
    out = capsys.readouterr().out
    assert "Call failed" in out and "Call: `call-0011`" in out and "[Play recording]" in out
    assert render_text(message) in out
