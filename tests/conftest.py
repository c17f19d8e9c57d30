"""Shared fixtures: real Redis on loopback, the real Litestar app, unique names per test.

Every test gets its own queue name, key prefix and fresh call ids, so tests never see each other's jobs
and the suite never flushes a database that someone else may be using; what a test wrote under its names
is deleted when it ends (`forget`), and the session fails if it left a `test:*` key without an expiry.
Redis must answer: a missing service is a failure (make test starts it), never a skip.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator

import pytest
import redis as sync_redis
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from contract import redisurl
from contract.settings import Settings
from service.app import create_app

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "test-token-" + "x" * 24


def forget(prefixes: Iterable[str] = (), names: Iterable[str] = (), url: str = REDIS_URL) -> int:
    """Deletes what a test wrote: the keys `names` (queue, streams), every key under each prefix, and arq's
    job, result, retry and in-progress keys of job ids under it. Returns how many keys went."""
    client = redisurl.sync_client(url)
    try:
        keys: list[bytes | str] = list(names)
        for prefix in prefixes:
            for pattern in (f"{prefix}*", f"arq:*:{prefix}*"):
                keys += client.scan_iter(match=pattern, count=10_000)
        return sum(client.delete(*keys[i:i + 1000]) for i in range(0, len(keys), 1000))
    finally:
        client.close()


def untimed_test_keys(url: str = REDIS_URL) -> set[bytes]:
    """The `test:*` keys of db 0 that would never expire."""
    client = sync_redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match="test:*", count=10_000))
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.ttl(key)
            ttls = pipe.execute()
        return {key for key, ttl in zip(keys, ttls, strict=True) if ttl == -1}
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def leaves_nothing_behind() -> Iterator[None]:
    """The suite as a whole leaves no `test:*` key without an expiry in Redis (keys that were there before
    it began are not its own). In CI (`CI` set) the suite runs alone and a leftover fails the run; on a
    shared machine another run's keys may be in use at that moment, so it is a warning there."""
    before = untimed_test_keys()
    yield
    deadline = time.monotonic() + 5
    while (left := untimed_test_keys() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    message = f"the suite left {len(left)} test:* key(s) without expiry, e.g. {sorted(left)[:5]}"
    if os.environ.get("CI"):
        assert not left, message
    elif left:
        warnings.warn(message, stacklevel=1)


@pytest.fixture
def settings() -> Iterator[Settings]:
    prefix, queue = f"test:{uuid.uuid4().hex}:", f"test:queue:{uuid.uuid4().hex}"
    yield Settings.from_env(
        {
            "REDIS_URL": REDIS_URL,
            "WEBHOOK_TOKENS": f"{TOKEN},second-token-{'y' * 20}",
            "QUEUE_NAME": queue,
            "KEY_PREFIX": prefix,
        }
    )
    forget([prefix, queue])


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.ping()
    yield client
    await client.aclose()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


def call_id() -> str:
    return str(uuid.uuid4())
