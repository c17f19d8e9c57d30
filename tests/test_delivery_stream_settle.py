"""A Redis Stream on the ledger's own Redis appends and settles in one script: one round trip, and no state
between the entry and its delivered mark for a killed worker or a lost answer to leave behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import REDIS_URL
from tests.helpers.sinks import AnswerLoser, make_event
from workers.deliver.ledger import Ledger
from workers.deliver.sinks import SinkOptions, idempotency_key, open_sink
from workers.retry import Permanent, Transient


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"test:stream-settle:{uuid.uuid4().hex}:"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _client_commands(redis: Redis, prefix: str, action: Any) -> list[str]:
    """The commands naming `prefix` that clients (not scripts) sent while `action()` ran, as MONITOR saw them."""
    seen: list[str] = []
    marker = f"{prefix}end"
    async with redis.monitor() as monitor:
        async def read() -> None:
            async for line in monitor.listen():
                if marker in line["command"]:
                    return
                if prefix in line["command"] and line.get("client_type") != "lua":
                    seen.append(line["command"].split()[0].upper())
        reader = asyncio.create_task(read())
        await asyncio.sleep(0.05)
        await action()
        await redis.echo(marker)
        await asyncio.wait_for(reader, 10)
    return seen


async def test_a_stream_on_the_ledgers_redis_appends_and_settles_in_one_call(prefix: str) -> None:
    """Offered the try's settle, the sink on the ledger's Redis takes it: one EVALSHA appends the entry, sets
    the publish mark and the delivered mark, counts the delivery in the destination's health and gives the lease
    back; the next claim answers "delivered", and a repeat appends nothing."""
    redis, watcher = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    book = Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30, url=REDIS_URL)
    sink = await open_sink(f"{REDIS_URL}?stream={prefix}stream", name="events", options=SinkOptions(key_prefix=prefix))
    event = make_event()
    try:
        claim = await book.claim(event.id, "events")
        with book.offer(claim, event=event.id, first_at_ms=1) as offer:
            sent = await _client_commands(
                watcher, prefix, lambda: sink.publish(event, idempotency_key=idempotency_key(event, "events")))
        assert offer is not None and offer.taken
        assert sent == ["EVALSHA"], sent
        assert await redis.xlen(f"{prefix}stream") == 1
        assert await redis.exists(*claim.keys) == 1, "the delivered mark set, the lease given back"
        assert await redis.exists(claim.keys[0]) == 1
        assert await redis.hget(claim.destination.health, "delivered") == b"1"
        assert (await book.claim(event.id, "events")).delivered
        with book.offer(claim, event=event.id, first_at_ms=1) as again:
            await sink.publish(event, idempotency_key=idempotency_key(event, "events"))
        assert again is not None and again.taken and await redis.xlen(f"{prefix}stream") == 1
    finally:
        await sink.close()
        await redis.aclose()
        await watcher.aclose()


async def test_a_stream_the_ledger_does_not_name_leaves_the_settle_to_the_ledger(prefix: str) -> None:
    """A sink whose URL is not the ledger's (another Redis, or the same one spelled otherwise) appends alone: the
    offer stays untaken and no delivered mark is set until the ledger settles."""
    redis = Redis.from_url(REDIS_URL)
    book = Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30, url=REDIS_URL.replace("127.0.0.1", "localhost"))
    sink = await open_sink(f"{REDIS_URL}?stream={prefix}stream", name="events", options=SinkOptions(key_prefix=prefix))
    event = make_event()
    try:
        claim = await book.claim(event.id, "events")
        with book.offer(claim, event=event.id, first_at_ms=1) as offer:
            await sink.publish(event, idempotency_key=idempotency_key(event, "events"))
        assert offer is not None and not offer.taken
        assert await redis.xlen(f"{prefix}stream") == 1 and await redis.exists(claim.keys[0]) == 0
        await book.settle(claim, delivered=True, event=event.id)
        assert (await book.claim(event.id, "events")).delivered
    finally:
        await sink.close()
        await redis.aclose()


async def test_an_append_whose_answer_was_lost_is_not_made_again(prefix: str) -> None:
    """Redis runs the script and its answer is lost: the try fails (Transient) and settles as failed, as
    attempt_once does; the next claim answers "delivered", and the stream holds the entry once."""
    proxy = await AnswerLoser("127.0.0.1", 6379, prefix.encode() + b"published:").start()
    url = f"redis://127.0.0.1:{proxy.port}/0"
    redis = Redis.from_url(REDIS_URL)
    book = Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30, url=url)
    sink = await open_sink(f"{url}?stream={prefix}stream", name="events",
                           options=SinkOptions(key_prefix=prefix, timeout_s=1.0))
    event = make_event()
    try:
        claim = await book.claim(event.id, "events")
        with pytest.raises(Transient), book.offer(claim, event=event.id, first_at_ms=1) as offer:
            await sink.publish(event, idempotency_key=idempotency_key(event, "events"))
        assert proxy.lost and offer is not None and not offer.taken
        await book.settle(claim, delivered=False, event=event.id, reason="lost")
        assert (await book.claim(event.id, "events")).delivered
        assert await redis.xlen(f"{prefix}stream") == 1
    finally:
        await sink.close()
        await proxy.cut()
        await redis.aclose()


async def test_a_refused_append_settles_nothing(prefix: str) -> None:
    """XADD refused (WRONGTYPE) under an offer: Permanent, and neither mark: the lease is the try's to give back
    as failed, and the dead letter's replay appends once the key is fixed."""
    redis = Redis.from_url(REDIS_URL)
    book = Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30, url=REDIS_URL)
    sink = await open_sink(f"{REDIS_URL}?stream={prefix}stream", name="events", options=SinkOptions(key_prefix=prefix))
    event = make_event()
    try:
        await redis.set(f"{prefix}stream", "not a stream")
        claim = await book.claim(event.id, "events")
        with pytest.raises(Permanent), book.offer(claim, event=event.id, first_at_ms=1) as offer:
            await sink.publish(event, idempotency_key=idempotency_key(event, "events"))
        assert offer is not None and not offer.taken
        assert await redis.exists(claim.keys[0], f"{prefix}published:{idempotency_key(event, 'events')}") == 0
        assert await redis.exists(claim.keys[1]) == 1, "the lease is still the try's"
    finally:
        await sink.close()
        await redis.aclose()
