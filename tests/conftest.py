"""Shared fixtures: real Redis on loopback, the real Litestar app, unique names per test.

Every test gets its own queue name and fresh call ids, so tests never see each other's jobs and the
suite never flushes a database that someone else may be using. Redis must answer: a missing service is
a failure (make test starts it), never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from contract.settings import Settings
from service.app import create_app

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "test-token-" + "x" * 24


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "REDIS_URL": REDIS_URL,
            "WEBHOOK_TOKENS": f"{TOKEN},second-token-{'y' * 20}",
            "QUEUE_NAME": f"test:queue:{uuid.uuid4().hex}",
            "KEY_PREFIX": f"test:{uuid.uuid4().hex}:",
        }
    )


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
