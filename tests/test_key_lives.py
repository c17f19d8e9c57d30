"""Every key we write ends (issue #22): none is left without a TTL but the capped kinds named in `capped`.

A call's dead letter used to make its delivered marks permanent (PERSIST) so that a replay of any age would
skip the destinations that had its events; a purge, a letter never replayed, or a replay that only made the
transcript left those marks in Redis forever. Marks kept for a letter now live as long as a letter may
(workers/deadletter.py: DEAD_LETTER_RETENTION, plus a day), and the dead-letter stream itself ends. `keep` on its own
is pinned in tests/test_delivery_ledger.py.

End to end with the real arq worker (tests/pipeline.py), a signed-webhook destination `crm` beside the Redis
Stream `events`, and a SCAN over everything named for the test's own run (docs/keys.md lists the families).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from contract.events import COMPLETED, TRANSCRIBED, event_id
from contract.jobs import DELIVER, FETCH_TRANSCRIPT, job_deserializer, job_serializer
from sandbox.calls import SimCall
from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import Pipeline, by_type, pipeline
from workers import deadletter
from workers.deadletter import dead_letter
from workers.deliver import eventlog
from workers.operate.dlq import purge, replay


def capped(p: Pipeline) -> dict[str, str]:
    """The keys that may live without a TTL, each with what bounds it instead (docs/keys.md, "Capped")."""
    prefix = p.settings.key_prefix
    return {
        p.settings.queue_name: "arq's queue: a job leaves it when it runs; its record expires (JOB_EXPIRY)",
        p.settings.events_stream: "a Redis Stream destination: XADD MAXLEN ~ (maxlen=, EVENTS_STREAM_MAXLEN)",
        eventlog.key(prefix): "the event log: XADD MINID ~ EVENT_LOG_RETENTION",
        **{f"{prefix}alerts:{part}": "the Slack outbox, a queue: an alert leaves it when sent or dead-lettered"
           for part in ("due", "data", "notes:due", "notes:data")},
        **{f"{prefix}{kind}:{name}": "one per configured destination: its health, backlog (trimmed at JOB_EXPIRY),"
           " parked deliveries (kept until `resume`)"
           for kind in ("destination", "backlog", "parked") for name in ("events", "crm")},
    }


async def untimed(p: Pipeline) -> dict[str, int]:
    """Every key named for this run (prefix, queue, streams, arq's keys of our job ids) with TTL -1."""
    patterns = (f"{p.settings.key_prefix}*", f"arq:*{p.settings.key_prefix}*", f"{p.settings.queue_name}*",
                p.settings.events_stream, p.settings.dead_letter_stream)
    keys = {k.decode() for pattern in patterns async for k in p.redis.scan_iter(match=pattern, count=10_000)}
    ttls = {key: await p.redis.ttl(key) for key in sorted(keys)}
    return {key: ttl for key, ttl in ttls.items() if ttl == -1}


@asynccontextmanager
async def two_destinations(tmp_path: Path, receiver: WebhookReceiver) -> AsyncIterator[Pipeline]:
    """Every event to the Redis Stream `events` and `wavix.call.completed` to `crm`; calls with transcripts."""
    await receiver.start()
    stream = f"test:events:{uuid.uuid4().hex}"
    routing = tmp_path / "sinks.yaml"
    routing.write_text(
        "destinations:\n"
        f"  - name: events\n    url: {REDIS_URL}?stream={stream}&maxlen=1000\n"
        f"  - name: crm\n    url: http://127.0.0.1:{receiver.port}/hooks\n    secret: {receiver.secret}\n"
        "    filter:\n      types: [wavix.call.completed]\n"
    )
    config = SandboxConfig(seed=8, transcript_share=1.0, machine_share=0.0, transcript_failed_share=0.0)
    try:
        async with pipeline(config, SINKS_CONFIG=str(routing), EVENTS_STREAM=stream) as p:
            yield p
    finally:
        await receiver.stop()


@dataclass
class Paths:
    """Which answered call's transcript letter went which way."""

    replayed: SimCall
    purged: SimCall
    left: SimCall
    failed: SimCall  # not answered: its only letter is crm's `deliver`, replayed to success


async def letters_of(p: Pipeline, kind: str) -> dict[str, str]:
    """call id -> entry id of the dead letters of `kind`."""
    entries = await p.redis.xrange(p.settings.dead_letter_stream)
    return {f[b"call_id"].decode(): i.decode() for i, f in entries if f[b"kind"].decode() == kind}


async def success_dead_letter_replay_and_purge(p: Pipeline, receiver: WebhookReceiver) -> Paths:
    """Four calls, three answered. crm refuses (410): each completed event reaches `events`, and crm's delivery
    is dead-lettered. The transcript jobs then meet a wrong API key (401) and are dead-lettered, keeping their
    calls' marks. Then, fixed: one transcript letter and the failed call's crm letter are replayed to success,
    one transcript letter is purged, one is left."""
    receiver.status = 410
    calls, _ = await p.place_and_send(4)
    answered = [c for c in calls if c.disposition == "answered"]
    [failed] = [c for c in calls if c.disposition != "answered"]
    assert len(answered) == 3, "seed 8 places three answered calls"
    await p.run_worker(max_burst_jobs=len(calls))  # the calls' jobs only: their transcript polls stay queued
    assert sorted(by_type(await p.events(), COMPLETED)) == sorted(c.call_id for c in calls)

    await (await p.with_settings(WAVIX_API_KEY="wrong-key")).run_worker()
    transcript_letters = await letters_of(p, FETCH_TRANSCRIPT)
    assert sorted(transcript_letters) == sorted(c.call_id for c in answered)

    paths = Paths(replayed=answered[0], purged=answered[1], left=answered[2], failed=failed)
    receiver.status = 204
    fixed = await p.with_settings(WAVIX_API_KEY=p.sandbox.config.api_key)
    await fixed.replay(transcript_letters[paths.replayed.call_id])
    await fixed.replay((await letters_of(p, DELIVER))[failed.call_id])
    [purged] = [d for d in await deadletter.list_dead(p.redis, p.settings.dead_letter_stream)
                if d.id == transcript_letters[paths.purged.call_id]]
    assert await purge(p.arq(), p.settings.dead_letter_stream, [purged], yes=True) == 1
    await fixed.run_worker()
    assert sorted(by_type(await p.events(), TRANSCRIBED)) == [paths.replayed.call_id]
    assert f"{event_id(failed.call_id, COMPLETED)}:crm" in {r.headers["webhook-id"] for r in receiver.received}
    return paths


async def test_a_dead_lettered_calls_marks_end_whatever_becomes_of_its_letter(tmp_path: Path) -> None:
    """The completed event's delivered mark of a call whose transcript job was dead-lettered keeps a TTL
    (never -1), of at most the letter's retention and a day, whether the letter was replayed to success,
    purged, or never replayed."""
    receiver = WebhookReceiver()
    async with two_destinations(tmp_path, receiver) as p:
        paths = await success_dead_letter_replay_and_purge(p, receiver)
        for path, call in (("replayed", paths.replayed), ("purged", paths.purged), ("left", paths.left)):
            mark = f"{p.settings.key_prefix}delivered:{event_id(call.call_id, COMPLETED)}:events"
            ttl = await p.redis.ttl(mark)
            assert ttl > 0, f"{path}: {mark} has TTL {ttl}"
            assert ttl <= deadletter.marks_kept_s(), f"{path}: {mark} has TTL {ttl}"


async def test_an_end_to_end_run_leaves_no_key_without_a_ttl_but_the_capped_ones(tmp_path: Path) -> None:
    """After success, dead letters (jobs and deliveries), replays and a purge, a SCAN over everything named for
    the run finds no key without a TTL except the capped kinds: the queue, the streams trimmed as they are
    written, the call index, and each destination's own state."""
    receiver = WebhookReceiver()
    async with two_destinations(tmp_path, receiver) as p:
        await success_dead_letter_replay_and_purge(p, receiver)
        allowed = capped(p)
        unbounded = {key: ttl for key, ttl in (await untimed(p)).items() if key not in allowed}
        assert unbounded == {}, f"keys without a TTL: {sorted(unbounded)}"


@pytest.fixture
async def scratch() -> AsyncIterator[tuple[Redis, str]]:
    """A client and a key prefix of the test's own, whose keys are deleted when it ends."""
    client, prefix = Redis.from_url(REDIS_URL), f"test:lives:{uuid.uuid4().hex}:"
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_the_dead_letter_stream_keeps_letters_for_their_retention_only(scratch: tuple[Redis, str]) -> None:
    """Writing a letter trims the ones older than DEAD_LETTER_RETENTION and gives the stream that TTL (it ends when its
    newest letter is past retention); a replay refuses a letter past retention even where no write trimmed it."""
    redis, prefix = scratch
    stream = prefix + "dead"
    old_ms = int((time.time() - deadletter.DEFAULT_RETENTION_S - 60) * 1000)
    await redis.xadd(stream, {"kind": DELIVER, "payload": b""}, id=f"{old_ms}-0")
    new = await dead_letter(redis, stream, kind=DELIVER, reason="503", attempts=8, payload=b"", call_id="c")
    assert [i.decode() for i, _ in await redis.xrange(stream)] == [new]
    assert 0 < await redis.ttl(stream) <= deadletter.DEFAULT_RETENTION_S

    untouched = prefix + "dead:untouched"  # no letter written since: nothing trimmed it
    await redis.xadd(untouched, {"kind": DELIVER, "payload": b""}, id=f"{old_ms}-0")
    arq = ArqRedis(connection_pool=redis.connection_pool, job_serializer=job_serializer,
                   job_deserializer=job_deserializer)
    with pytest.raises(KeyError, match="retention"):
        await replay(arq, untouched, f"{old_ms}-0", queue_name=prefix + "queue", key_prefix=prefix)
    assert await redis.xlen(untouched) == 0
