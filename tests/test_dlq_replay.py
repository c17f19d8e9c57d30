"""`wavix-events dlq`: replays that cannot double a delivery, refusals that keep the letter, honest counts."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from redis.asyncio import Redis

from contract.jobs import DELIVER, PROCESS_CALL, Receipt, job_deserializer, job_serializer
from contract.settings import Settings
from contract.webhooks import Kind
from tests.conftest import REDIS_URL
from workers.deadletter import dead_letter
from workers.deliver.delivery import Delivery, encode_delivery
from workers.operate.dlq import replay, run


@pytest.fixture
async def arq() -> AsyncIterator[ArqRedis]:
    pool = Redis.from_url(REDIS_URL).connection_pool
    redis = ArqRedis(connection_pool=pool, job_serializer=job_serializer, job_deserializer=job_deserializer)
    prefix = f"test:dlq:{uuid.uuid4().hex}:"
    redis.test_prefix = prefix  # type: ignore[attr-defined]
    yield redis
    keys = [k async for k in redis.scan_iter(match=f"*{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def names(redis: ArqRedis) -> tuple[str, str, str]:
    prefix: str = redis.test_prefix  # type: ignore[attr-defined]
    return prefix, prefix + "dead", prefix + "queue"


def a_delivery() -> Delivery:
    return Delivery(destination="crm", call_id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), event=b"{}",
                    first_at_ms=time.time_ns() // 1_000_000)


async def test_two_letters_for_one_delivery_queue_one_job_and_the_refused_one_is_kept(arq: ArqRedis) -> None:
    """Replaying a `deliver` letter queues `{prefix}deliver:{event_id}:{destination}`; a second letter for the
    same delivery is refused (the job exists), says so, and stays in the stream."""
    prefix, dead, queue = names(arq)
    delivery = a_delivery()
    first, second = [await dead_letter(arq, dead, kind=DELIVER, reason="503", attempts=20,
                                       payload=encode_delivery(delivery), call_id=delivery.call_id)
                     for _ in range(2)]
    job = f"{prefix}deliver:{delivery.event_id}:crm"
    await arq.set(result_key_prefix + job, b"the failed run's result")  # arq keeps it an hour
    assert (await replay(arq, dead, first, queue_name=queue, key_prefix=prefix)).startswith("queued")
    with pytest.raises(ValueError, match="kept"):
        await replay(arq, dead, second, queue_name=queue, key_prefix=prefix)
    assert [m.decode() for m in await arq.zrange(queue, 0, -1)] == [job]
    assert [i.decode() for i, _ in await arq.xrange(dead)] == [second]


async def test_a_refused_enqueue_keeps_the_letter(arq: ArqRedis) -> None:
    """When arq refuses the job (its id exists), the replay reports it and the letter is not deleted."""
    prefix, dead, queue = names(arq)
    receipt = Receipt(kind=Kind.POST_CALL, call_id=str(uuid.uuid4()), event="", received_at_ms=0, body=b"{}")
    letter = await dead_letter(arq, dead, kind=PROCESS_CALL, reason="401", attempts=1,
                               payload=msgspec.msgpack.encode(receipt), call_id=receipt.call_id)
    await arq.set(job_key_prefix + f"{prefix}replay:{letter}", b"queued already")
    with pytest.raises(ValueError, match="kept"):
        await replay(arq, dead, letter, queue_name=queue, key_prefix=prefix)
    assert await arq.xlen(dead) == 1


async def test_list_with_a_limit_reports_the_total(
    arq: ArqRedis, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dlq list --limit 2` with 5 letters shows 2 and says there are 5."""
    _, dead, _ = names(arq)
    for n in range(5):
        await dead_letter(arq, dead, kind=DELIVER, reason=f"r{n}", attempts=1, payload=b"", call_id=f"c{n}")
    listing = msgspec.structs.replace(settings, dead_letter_stream=dead)
    assert await run(listing, "list", [], replay_all=False, limit=2) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 3 and "2 of 5 dead letter(s)" in out


async def call_letters(arq: ArqRedis, dead: str, count: int) -> list[str]:
    """`count` dead `process_call` letters, each for a call of its own, oldest first."""
    letters = []
    for _ in range(count):
        receipt = Receipt(kind=Kind.POST_CALL, call_id=str(uuid.uuid4()), event="", received_at_ms=0, body=b"{}")
        letters.append(await dead_letter(arq, dead, kind=PROCESS_CALL, reason="401", attempts=1,
                                         payload=msgspec.msgpack.encode(receipt), call_id=receipt.call_id))
    return letters


async def test_replay_all_with_a_limit_replays_that_many_oldest_first(arq: ArqRedis, settings: Settings) -> None:
    """`dlq replay --all --limit 3` with 5 letters replays the 3 oldest and keeps the 2 others; without
    `--limit` it replays every letter the filters select."""
    prefix, dead, queue = names(arq)
    letters = await call_letters(arq, dead, 5)
    ours = msgspec.structs.replace(settings, dead_letter_stream=dead, queue_name=queue, key_prefix=prefix)
    assert await run(ours, "replay", [], replay_all=True, limit=3) == 0
    assert [i.decode() for i, _ in await arq.xrange(dead)] == letters[3:]
    assert await arq.zcard(queue) == 3
    assert await run(ours, "replay", [], replay_all=True, limit=None) == 0
    assert await arq.xlen(dead) == 0 and await arq.zcard(queue) == 5


async def test_a_limit_with_named_letters_is_refused(arq: ArqRedis, settings: Settings,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`dlq replay ID ID --limit 1` could only be a mistake (which one?): exit 2, one line, nothing replayed."""
    prefix, dead, queue = names(arq)
    letters = await call_letters(arq, dead, 2)
    ours = msgspec.structs.replace(settings, dead_letter_stream=dead, queue_name=queue, key_prefix=prefix)
    assert await run(ours, "replay", letters, replay_all=False, limit=1) == 2
    assert "--limit" in capsys.readouterr().err
    assert await arq.xlen(dead) == 2
