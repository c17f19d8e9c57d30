"""The Redis Stream sink's publish mark means "delivered": it is set only once the entry is in the stream."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from tests.helpers.sinks import make_event
from workers.deliver.sinks import SinkOptions, idempotency_key, open_sink
from workers.retry import Permanent

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_a_refused_xadd_leaves_no_mark_so_the_replay_appends() -> None:
    """XADD refused (the key is not a stream: WRONGTYPE) raises Permanent and sets no mark; once the operator
    fixes the key, publishing again (the dead letter's replay) appends the entry."""
    prefix = f"test:mark:{uuid.uuid4().hex}:"
    stream = prefix + "stream"
    redis = Redis.from_url(REDIS_URL)
    sink = await open_sink(f"{REDIS_URL}?stream={stream}", name="redis", options=SinkOptions(key_prefix=prefix))
    event = make_event()
    key = idempotency_key(event, "redis")
    try:
        await redis.set(stream, "not a stream")
        with pytest.raises(Permanent):
            await sink.publish(event, idempotency_key=key)
        assert await redis.exists(f"{prefix}published:{key}") == 0, "a mark without an entry"
        await redis.delete(stream)
        await sink.publish(event, idempotency_key=key)
        entries = await redis.xrange(stream)
        assert [f[b"id"].decode() for _, f in entries] == [event.id]
        await sink.publish(event, idempotency_key=key)
        assert await redis.xlen(stream) == 1, "a repeat after success appends nothing"
    finally:
        await sink.close()
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
