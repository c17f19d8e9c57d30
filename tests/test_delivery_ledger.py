"""The delivery ledger in Redis: one attempt in flight, a mark only after confirmation, marks kept for replays."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from contract.events import COMPLETED, TRANSCRIBED, event_id
from tests.conftest import REDIS_URL
from workers import deadletter
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


async def test_keep_gives_a_calls_marks_the_life_of_its_dead_letter_not_forever(
    book: tuple[Ledger, Redis, str]
) -> None:
    """`keep(call_id, ttl_s=...)` lengthens the TTL of the call's delivered marks to the life of its dead letter
    (issue #22: it once made them permanent); a mark left permanent by an older version gets that TTL too, and
    the claim that finds a kept mark answers "delivered" and leaves its TTL as it is."""
    ledger, redis, prefix = book
    call = str(uuid.uuid4())
    completed, transcribed = event_id(call, COMPLETED), event_id(call, TRANSCRIBED)
    await ledger.settle(await ledger.claim(completed, "crm"), delivered=True)
    await redis.set(f"{prefix}delivered:{transcribed}:crm", "1")  # PERSISTed before the fix
    assert await ledger.keep(call, ["crm", "events"], ttl_s=deadletter.marks_kept_s()) == 2
    for event in (completed, transcribed):
        ttl = await redis.ttl(f"{prefix}delivered:{event}:crm")
        assert deadletter.DEFAULT_RETENTION_S < ttl <= deadletter.marks_kept_s(), (event, ttl)
    assert (await ledger.claim(completed, "crm")).delivered
    assert await redis.ttl(f"{prefix}delivered:{completed}:crm") > deadletter.DEFAULT_RETENTION_S
