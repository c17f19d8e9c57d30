"""The ledger's one-call claim of every destination of an event, with the event log's entry in the same call."""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

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
        claims, first = await ledger.claim_all("e1", [("done", 0), ("busy", 0), ("paused", 0), ("free", 2.0)],
                                               log=entry)
        assert first is None, "the first build"
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


class _FirstAnswerLost:
    """A scripts host whose first call runs in Redis and then fails, as if the connection reset before the
    answer came back."""

    def __init__(self, redis: Redis) -> None:
        self.redis, self.lost = redis, 0

    def register_script(self, text: str) -> Any:
        script = self.redis.register_script(text)

        async def call(keys: list[str], args: list[Any]) -> Any:
            answer = await script(keys=keys, args=args)
            if not self.lost:
                self.lost += 1
                raise RedisConnectionError("connection reset before the answer")
            return answer

        return call


async def test_a_claim_whose_answer_was_lost_is_asked_again_and_finds_its_own_lease() -> None:
    """The lease Redis took for a claim whose answer was lost is that claim's: asked again it is ours, with no
    second rate slot taken; any other attempt still finds it busy."""
    redis, prefix = Redis.from_url(REDIS_URL), f"test:claimall:{uuid.uuid4().hex}:"
    host = _FirstAnswerLost(redis)
    ledger = Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30, scripts=host)
    try:
        claim = await ledger.claim("e1", "crm", max_per_second=2.0)
        assert host.lost == 1, "the first answer was lost"
        assert not (claim.delivered or claim.busy_ms or claim.throttled_ms) and claim.wait_ms == 0
        assert await redis.get(f"{prefix}delivering:e1:crm") == claim.token.encode()
        slot, (seconds, micros) = float(await redis.get(f"{prefix}rate:crm")), await redis.time()
        assert 0 < slot - (seconds * 1000 + micros / 1000) <= 500, "one slot (500 ms) taken, not two"
        other = await Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30).claim("e1", "crm")
        assert other.busy_ms > 0, "another attempt waits for this one"
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
