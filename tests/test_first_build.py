"""First build wins (workers/deliver/eventlog.py): a job that runs again and builds its event differently (a
webhook came in between: an on-call "machine" event) sends the first build, never a second body under the same
event id, so a consumer that drops a repeated `webhook-id` loses nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from contract import events as ev
from tests.conftest import REDIS_URL
from tests.helpers.resources import worker_resources
from tests.helpers.sinks import WebhookHarness, make_event
from workers.deliver import eventlog
from workers.deliver.delivery import deliver_all
from workers.deliver.ledger import Ledger


@pytest.fixture
async def crm(tmp_path: Path) -> AsyncIterator[tuple[dict[str, Any], WebhookHarness, Redis]]:
    """A worker's resources with one signed-webhook destination, `crm`."""
    harness = WebhookHarness()
    await harness.setup()
    (tmp_path / "sinks.yaml").write_text(f"destinations:\n  - name: crm\n    url: {harness.url()}\n"
                                         f"    secret: {harness.secret}\n")
    try:
        async with worker_resources(tmp_path / "sinks.yaml") as (ctx, _, redis):
            yield ctx, harness, redis
    finally:
        await harness.cleanup()


async def test_a_rebuilt_event_is_sent_as_first_built(crm: tuple[dict[str, Any], WebhookHarness, Redis]) -> None:
    """The first try reaches crm, and its worker dies before the delivered mark is written (the mark removed
    here); the job's re-run builds the event with `answered_by: machine` now known and sends again: crm gets the
    first body again, byte for byte, and the event log holds the one entry."""
    ctx, harness, redis = crm
    resources = ctx["resources"]
    first = make_event(answered_by="human")
    again = msgspec.structs.replace(first, data=msgspec.structs.replace(first.data, answered_by="machine"))
    assert ev.encode_event(again) != ev.encode_event(first)
    await deliver_all(resources, first, 1)
    mark, _ = resources.ledger.keys(first.id, "crm")
    assert await redis.delete(mark) == 1, "the first try was delivered and marked"
    await deliver_all(resources, again, 2)
    bodies = [r.body for r in harness.receiver.received]
    assert bodies == [ev.encode_event(first)] * 2, [ev.decode_event(b).data for b in bodies]
    logged = [body async for _, _, body in eventlog.read(redis, resources.settings.key_prefix, since_ms=0)]
    assert logged == [ev.encode_event(first)]


async def test_claim_all_answers_the_first_build_only_to_a_later_one() -> None:
    """The first claim logs the event and answers no first build; a later one for the same id logs nothing and
    answers the first's JSON; past the log (its entry trimmed) the later build is logged and sent as built."""
    redis, prefix = Redis.from_url(REDIS_URL), f"test:first:{uuid.uuid4().hex}:"
    ledger = Ledger(redis, prefix, delivered_ttl_s=600, lease_s=30)
    event = make_event()
    try:
        one = eventlog.entry(prefix, event, b'{"v":1}', retention_s=3600)
        two = eventlog.entry(prefix, event, b'{"v":2}', retention_s=3600)
        assert (await ledger.claim_all(event.id, [("a", 0)], log=one))[1] is None
        assert (await ledger.claim_all(event.id, [("b", 0)], log=two))[1] == b'{"v":1}'
        assert await redis.xlen(eventlog.key(prefix)) == 1
        assert 0 < await redis.ttl(eventlog.first_key(prefix, event.id)) <= 3600
        await redis.delete(eventlog.key(prefix))  # the log trimmed past its retention
        assert (await ledger.claim_all(event.id, [("c", 0)], log=two))[1] is None
        assert [b async for _, _, b in eventlog.read(redis, prefix, since_ms=0)] == [b'{"v":2}']
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
