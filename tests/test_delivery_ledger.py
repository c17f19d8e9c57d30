"""The delivery ledger in Redis: one attempt in flight, a mark only after confirmation, marks kept for replays."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from contract.events import COMPLETED, event_id
from tests.conftest import REDIS_URL
from workers.deliver.ledger import Ledger


@pytest.fixture
async def book() -> AsyncIterator[tuple[Ledger, Redis, str]]:
    redis, prefix = Redis.from_url(REDIS_URL), f"test:ledger:{uuid.uuid4().hex}:"
    yield Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30), redis, prefix
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_one_attempt_at_a_time_and_the_mark_only_after_success(book: tuple[Ledger, Redis, str]) -> None:
    """While an attempt holds the lease a second claim is told to wait; a failed attempt frees the lease and
    sets no mark; a successful one sets the mark, after which every claim answers "delivered"."""
    ledger, _, _ = book
    first = await ledger.claim("e1", "crm")
    assert not first.delivered and first.busy_ms == 0
    second = await ledger.claim("e1", "crm")
    assert second.busy_ms > 0 and not second.delivered
    await ledger.settle(first, delivered=False)
    retry = await ledger.claim("e1", "crm")
    assert retry.busy_ms == 0 and not retry.delivered
    await ledger.settle(retry, delivered=True)
    assert (await ledger.claim("e1", "crm")).delivered
    assert (await ledger.claim("e1", "other")).busy_ms == 0, "each destination has its own state"


async def test_keep_makes_a_calls_marks_outlive_their_ttl_until_the_next_claim(
    book: tuple[Ledger, Redis, str]
) -> None:
    """`keep(call_id)` removes the TTL of the call's delivered marks (its dead letter may be replayed much
    later); the claim that finds such a mark answers "delivered" and gives the TTL back."""
    ledger, redis, prefix = book
    call = str(uuid.uuid4())
    claim = await ledger.claim(event_id(call, COMPLETED), "crm")
    await ledger.settle(claim, delivered=True)
    mark = f"{prefix}delivered:{event_id(call, COMPLETED)}:crm"
    assert await ledger.keep(call, ["crm", "events"]) == 1
    assert await redis.ttl(mark) == -1
    assert (await ledger.claim(event_id(call, COMPLETED), "crm")).delivered
    assert 0 < await redis.ttl(mark) <= 600
