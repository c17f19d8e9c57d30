"""The enqueuer sends the webhooks gathered in one event-loop turn as ONE ENQUEUE_MANY call, and each
webhook still gets its own answer: queued once per call, a duplicate in the same batch included."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contract.redisbatch import BatchedRedis
from contract.webhooks import classify
from service.enqueue import MAX_BATCH, Enqueuer
from tests.conftest import REDIS_URL, call_id, forget
from tests.helpers import payloads


class _Counting(BatchedRedis):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.commands: list[bytes] = []

    async def call(self, *args: Any) -> Any:
        self.commands.append(args[0])
        return await super().call(*args)


@pytest.fixture
async def names() -> Any:
    prefix = f"test:batch:{call_id()}:"
    yield prefix, prefix + "queue"
    forget([prefix], [prefix + "queue"])


async def test_one_turn_of_webhooks_is_one_call_and_each_gets_its_own_answer(names: tuple[str, str]) -> None:
    prefix, queue = names
    redis = _Counting(REDIS_URL)
    enqueuer = Enqueuer(redis, queue_name=queue, key_prefix=prefix, dedup_ttl_s=60, job_expiry_s=60)
    ids = [call_id() for _ in range(5)]
    bodies = [payloads.encode(payloads.post_call(cid)) for cid in ids + ids[:2]]  # two repeats in the batch
    try:
        answers = await asyncio.gather(*(enqueuer.enqueue(classify(b), b) for b in bodies))
        assert answers == [True] * 5 + [False] * 2
        assert redis.commands == [b"EVALSHA"]
        plain = Redis.from_url(REDIS_URL)
        assert sorted(m.decode() for m in await plain.zrange(queue, 0, -1)) == sorted(f"{prefix}call:{c}" for c in ids)
        await plain.aclose()
    finally:
        await redis.aclose()


async def test_more_than_a_batch_at_once_is_split_and_every_call_is_answered(names: tuple[str, str]) -> None:
    """MAX_BATCH + 3 webhooks at once are two script calls, and the write time is observed once per batch."""
    prefix, queue = names
    redis = _Counting(REDIS_URL)
    written: list[float] = []
    enqueuer = Enqueuer(redis, queue_name=queue, key_prefix=prefix, dedup_ttl_s=60, job_expiry_s=60,
                        on_written=written.append)
    bodies = [payloads.encode(payloads.post_call(call_id())) for _ in range(MAX_BATCH + 3)]
    try:
        assert all(await asyncio.gather(*(enqueuer.enqueue(classify(b), b) for b in bodies)))
        assert redis.commands == [b"EVALSHA", b"EVALSHA"]
        assert len(written) == 2 and all(0 < seconds < 5 for seconds in written), written  # once per batch
    finally:
        await redis.aclose()


async def test_an_error_reply_fails_every_webhook_of_its_batch(names: tuple[str, str]) -> None:
    """A queue key of the wrong type makes the script fail: every caller of the batch gets the error."""
    prefix, queue = names
    plain = Redis.from_url(REDIS_URL)
    await plain.set(queue, "not a sorted set", ex=60)
    redis = BatchedRedis(REDIS_URL)
    enqueuer = Enqueuer(redis, queue_name=queue, key_prefix=prefix, dedup_ttl_s=60, job_expiry_s=60)
    bodies = [payloads.encode(payloads.post_call(call_id())) for _ in range(3)]
    try:
        results = await asyncio.gather(*(enqueuer.enqueue(classify(b), b) for b in bodies), return_exceptions=True)
        assert [type(r) for r in results] == [ResponseError] * 3
    finally:
        await redis.aclose()
        await plain.aclose()
