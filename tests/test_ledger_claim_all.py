"""The ledger's one-call claim of every destination of an event, with the event log's entry in the same call."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from contract.events import CallCompletedEvent, CloudEvent
from tests.conftest import REDIS_URL
from workers.deliver import eventlog
from workers.deliver.ledger import Ledger


class _Event:
    """What `eventlog.entry` reads of an event."""

    id, type = "e1", CallCompletedEvent.__name__


async def test_claim_all_answers_each_destination_as_claim_would_and_logs_the_event_first() -> None:
    """Delivered, busy, paused and free destinations each get their own answer, in order; the log entry is
    written once, with the event's id, type and body; with no entry nothing is logged."""
    redis, prefix = Redis.from_url(REDIS_URL), f"test:claimall:{uuid.uuid4().hex}:"
    ledger = Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30)
    try:
        done = await ledger.claim("e1", "done")
        await ledger.settle(done, delivered=True)
        await ledger.claim("e1", "busy")
        await redis.hset(f"{prefix}destination:paused", "paused_ms", 1)
        event: CloudEvent = _Event()  # type: ignore[assignment]
        entry = eventlog.entry(prefix, event, b'{"id":"e1"}', retention_s=3600)
        claims = await ledger.claim_all("e1", [("done", 0), ("busy", 0), ("paused", 0), ("free", 2.0)], log=entry)
        assert [c.delivered for c in claims] == [True, False, False, False]
        assert claims[1].busy_ms > 0 and claims[2].paused and claims[3].wait_ms == 0 and claims[3].busy_ms == 0
        assert await redis.pttl(f"{prefix}delivering:e1:free") > 0, "the free destination's lease is ours"
        assert await redis.exists(f"{prefix}rate:free") == 1, "and its rate slot taken"
        logged = [(i, e, body) async for i, e, body in eventlog.read(redis, prefix, since_ms=0)]
        assert [(e, body) for _, e, body in logged] == [("e1", b'{"id":"e1"}')]
        await ledger.claim_all("e2", [("free", 0)])
        assert len([x async for x in eventlog.read(redis, prefix, since_ms=0)]) == 1
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
