"""Tests leave nothing behind in the shared Redis: a pipeline's keys, streams, queue and arq job keys go
with it. (The session-wide check, no `test:*` key left without expiry, is `leaves_nothing_behind` in
tests/conftest.py.)"""

from __future__ import annotations

import redis

from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL, forget, untimed_test_keys
from tests.pipeline import pipeline


def keys_of(client: redis.Redis, *patterns: str) -> list[bytes]:
    return [k for p in patterns for k in client.scan_iter(match=p, count=10_000)]


async def test_a_pipeline_deletes_everything_it_wrote():
    """After a pipeline with calls, alerts and transcripts has run, no key under its prefix, none of its
    streams, its queue, or arq's keys of its job ids is left."""
    async with pipeline(SandboxConfig(seed=5, transcript_share=0.5)) as p:
        await p.place_and_send(12)
        await p.run_worker()
        await p.flush_alerts()
        settings = p.settings
        assert await p.events(), "the pipeline should have written something to clean up"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        left = keys_of(client, f"{settings.key_prefix}*", f"arq:*:{settings.key_prefix}*", f"{settings.queue_name}*")
        assert left == []
        assert client.exists(settings.events_stream, settings.dead_letter_stream) == 0
    finally:
        client.close()


def test_forget_deletes_keys_under_a_prefix_and_named_keys_only():
    """`forget` removes the named keys and every key under the prefix, arq's included, and nothing else."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.set("test:forget-me:a", 1)
        client.zadd("test:forget-me:queue", {"j": 1})
        client.set("arq:job:test:forget-me:call:1", 1)
        client.set("test:forget-not-me", 1, ex=60)
        client.xadd("test:forget-stream", {"event": "{}"})
        assert b"test:forget-me:a" in untimed_test_keys()
        assert forget(["test:forget-me:"], ["test:forget-stream"]) == 4
        assert keys_of(client, "test:forget-me:*", "arq:job:test:forget-me:*", "test:forget-stream") == []
        assert client.exists("test:forget-not-me") == 1
    finally:
        client.delete("test:forget-not-me")
        client.close()
