"""The alert channels' conformance suite: every channel keeps Slack's guarantees, against its stand-in.

Each test runs once per channel (tests/helpers/channels.py): real Redis, the service's stand-in on loopback
(a real SMTP server for e-mail), the outbox as workers run it (workers/alert/outbox.py). Each test has its own
key prefix, so its own outbox, gate and dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from tests.conftest import REDIS_URL
from tests.helpers.channels import HARNESSES, Harness
from tests.test_alerts import make_alert
from tests.test_slack import until
from workers.alert.outbox import dispatch_pending, queue_alert, run_dispatcher
from workers.alert.rules import DeliveryPolicy, pending_keys
from workers.operate.dlq import replay
from workers.retry import Schedule

FAST_RETRY = Schedule(delays=(0.05, 0.2), jitter=0.0)


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with HARNESSES[request.param]() as h:
        yield h


@pytest.fixture
async def policy(redis: Redis) -> AsyncIterator[DeliveryPolicy]:
    prefix = f"test:channels:{uuid.uuid4().hex}:"
    yield DeliveryPolicy(prefix=prefix, retry=FAST_RETRY)
    keys = [key async for key in redis.scan_iter(match=prefix + "*", count=10_000)]
    if keys:
        await redis.delete(*keys)


@contextlib.asynccontextmanager
async def workers(count: int, harness: Harness, policy: DeliveryPolicy) -> AsyncIterator[None]:
    """`count` dispatchers of the channel, each on its own Redis connection, like separate worker processes."""
    stop = asyncio.Event()
    clients = [Redis.from_url(REDIS_URL) for _ in range(count)]
    tasks = [asyncio.create_task(run_dispatcher(c, harness.channel, stop=stop, digest_threshold=5,
                                                dead_letter_stream=policy.prefix + "dead", policy=policy, poll_s=0.05))
             for c in clients]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for c in clients:
            await c.aclose()


async def flush(redis: Redis, harness: Harness, policy: DeliveryPolicy) -> Any:
    return await dispatch_pending(redis, harness.channel, digest_threshold=5, dead_letter_stream=policy.prefix + "dead",
                                  policy=policy)


def mentions(harness: Harness, text: str) -> int:
    """How many delivered messages name `text`."""
    return sum(text in message for message in harness.delivered())


async def test_an_alert_queued_again_and_again_by_two_workers_arrives_once(
    redis: Redis, harness: Harness, policy: DeliveryPolicy
) -> None:
    """The same call and reason queued by duplicate webhooks and by two workers reaches the channel once, in
    one message naming the call; the channel's mark says so to every later try."""
    other = Redis.from_url(REDIS_URL)
    try:
        queued = [await queue_alert(r, make_alert(7), policy=policy, channel=harness.name)
                  for r in (redis, other, redis, other)]
        async with workers(2, harness, policy):
            await until(lambda: harness.delivered())
        assert queued == [True, False, False, False]
        assert len(harness.delivered()) == 1 and mentions(harness, "call-0007") >= 1
        assert not await queue_alert(redis, make_alert(7), policy=policy, channel=harness.name)
    finally:
        await other.aclose()


async def test_a_channels_mark_is_its_own(redis: Redis, harness: Harness, policy: DeliveryPolicy) -> None:
    """An alert sent to Slack does not stop the same alert going to this channel, nor the other way round."""
    assert await queue_alert(redis, make_alert(3), policy=policy)  # Slack's outbox
    assert await queue_alert(redis, make_alert(3), policy=policy, channel=harness.name)
    await flush(redis, harness, policy)
    assert len(harness.delivered()) == 1 and await redis.zcard(pending_keys(policy.prefix)[0]) == 1


async def test_a_flood_goes_out_as_one_digest(redis: Redis, harness: Harness, policy: DeliveryPolicy) -> None:
    """Twenty alerts waiting at once go out as ONE message that counts them, not twenty."""
    for n in range(20):
        await queue_alert(redis, make_alert(n), policy=policy, channel=harness.name)
    stats = await flush(redis, harness, policy)
    assert (stats.digests, stats.digested, stats.dead_lettered) == (1, 20, 0)
    [digest] = harness.delivered()
    assert "20 call alerts" in digest and "call-0000" in digest


async def test_a_rate_limit_storm_is_paced_and_nothing_is_dropped(
    redis: Redis, harness: Harness, policy: DeliveryPolicy
) -> None:
    """Six rate-limit answers in a row (Retry-After 1 s where the service sends one) hold the channel back
    for every worker; no try is spent on them, and every alert arrives once the storm passes."""
    harness.throttle(6, retry_after=1)
    for n in range(3):
        await queue_alert(redis, make_alert(n), policy=policy, channel=harness.name)
    async with workers(2, harness, policy):
        await until(lambda: all(mentions(harness, f"call-000{n}") for n in range(3)), timeout=30)
    assert harness.attempts() >= 6 + 1
    assert all(mentions(harness, f"call-000{n}") == 1 for n in range(3))
    assert await redis.xlen(policy.prefix + "dead") == 0


async def test_a_malformed_message_is_dead_lettered_at_once_and_replays(
    redis: Redis, harness: Harness, policy: DeliveryPolicy
) -> None:
    """The service's "malformed" answer is not retried: the alert is a `{channel}_alert` dead letter with the
    service's reason and one attempt; `dlq replay` queues it again to the same channel, and it arrives."""
    harness.refuse()
    await queue_alert(redis, make_alert(4), policy=policy, channel=harness.name)
    stats = await flush(redis, harness, policy)
    assert (stats.dead_lettered, harness.attempts(), harness.delivered()) == (1, 1, [])
    [(entry_id, fields)] = await redis.xrange(policy.prefix + "dead")
    assert fields[b"kind"] == f"{harness.name}_alert".encode() and fields[b"attempts"] == b"1"
    assert harness.secret not in str(fields)
    arq = ArqRedis(connection_pool=redis.connection_pool)
    done = await replay(arq, policy.prefix + "dead", entry_id.decode(), queue_name=f"{policy.prefix}q",
                        key_prefix=policy.prefix)
    assert "call-0004" in done
    await flush(redis, harness, policy)
    assert mentions(harness, "call-0004") >= 1


async def test_the_channels_secret_is_never_logged(
    redis: Redis, harness: Harness, policy: DeliveryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    """Sent, throttled, refused and dead-lettered: no log line of ours carries the channel's secret (its URL's
    signature, its routing key, its password). (httpx's own request lines are silenced by contract/logs.py.)"""
    caplog.set_level(logging.DEBUG)
    harness.throttle(1)
    harness.refuse()
    for n in range(3):
        await queue_alert(redis, make_alert(n), policy=policy, channel=harness.name)
    async with workers(1, harness, policy):
        await until(lambda: harness.attempts() >= 4, timeout=20)

    def seen(r: logging.LogRecord) -> str:
        return f"{r.getMessage()} {getattr(r, 'fields', '')} {r.args}"

    ours = [r for r in caplog.records if r.name.split(".")[0] in ("workers", "contract", "service")]
    assert ours and not [seen(r) for r in ours if harness.secret in seen(r)]
    assert harness.secret not in repr(harness.channel.sender)
