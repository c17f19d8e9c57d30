"""Exactly once in the database: whatever is delivered again, the PostgreSQL tables end as if each event had
been applied once.

End to end with the real arq worker (tests/pipeline.py), the sandbox's calls and the real PostgreSQL: a routing
file sends every event to a Redis stream (`events`, what the worker made) and to a PostgreSQL destination
(`warehouse`, a schema of the test's own). "The same" is checked row by row, down to each row's xmin (the
transaction that last wrote it): a repeat that rewrote a row with equal values would show.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL
from tests.helpers.postgres import PORT, POSTGRES_URL, Schema, schema
from tests.helpers.sinks import AnswerLoser, make_event
from tests.pipeline import Pipeline, pipeline
from workers.deliver import admin
from workers.deliver.sinks import SinkOptions, open_sink
from workers.deliver.sinks.postgres_schema import migrate

APP = "wavix-events warehouse"  # the sink's application_name in pg_stat_activity


@asynccontextmanager
async def warehoused(tmp_path: Path, *, port: int = PORT, seed: int = 24,
                     transcripts: float = 0.0) -> AsyncIterator[tuple[Pipeline, Schema]]:
    """A pipeline routing every event to its Redis stream and to a PostgreSQL schema of its own."""
    async with schema() as s:
        stream = f"test:events:{uuid.uuid4().hex}"
        routing = tmp_path / "sinks.yaml"
        routing.write_text(
            "destinations:\n"
            f"  - name: events\n    url: {REDIS_URL}?stream={stream}\n"
            f"  - name: warehouse\n    url: {s.url(port=port)}\n    retry:\n      schedule: [1s, 1s, 1s]\n")
        config = SandboxConfig(seed=seed, transcript_share=transcripts)
        async with pipeline(config, SINKS_CONFIG=str(routing), EVENTS_STREAM=stream) as p:
            yield p, s


async def snapshot(s: Schema) -> dict[str, list[dict[str, Any]]]:
    """Every row of the three tables with the transaction that wrote it."""
    return {
        "calls": await s.rows("SELECT call_id, xmin::text, written_at, event FROM {s}.calls ORDER BY call_id"),
        "call_transcripts": await s.rows("SELECT call_id, xmin::text, status FROM {s}.call_transcripts "
                                         "ORDER BY call_id"),
        "events": await s.rows("SELECT event_id, xmin::text FROM {s}.events ORDER BY event_id"),
    }


async def assert_applied_once(p: Pipeline, s: Schema) -> None:
    """The tables hold exactly what the worker made: one `calls` row per completed event (its event as
    published), one `call_transcripts` row per call with a transcript outcome, one `events` row per event."""
    made = await p.events()
    completed = {e.subject: e for e in made if e.type == "wavix.call.completed"}
    rows = await s.rows("SELECT call_id, event_id::text, event FROM {s}.calls")
    assert {r["call_id"]: r["event_id"] for r in rows} == {c: e.id for c, e in completed.items()}
    assert sorted(str(r["event_id"]) for r in await s.rows("SELECT event_id FROM {s}.events")) == sorted(
        e.id for e in made)
    transcribed = {e.subject for e in made if e.type != "wavix.call.completed"}
    assert {r["call_id"] for r in await s.rows("SELECT call_id FROM {s}.call_transcripts")} == transcribed
    assert await p.dead_letters() == []


async def until(condition: Callable[[], Awaitable[Any]], within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while not (value := await condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return value


async def test_redelivery_after_a_lost_mark_and_a_replay_change_nothing(tmp_path: Path) -> None:
    """After a first run, a re-run with the ledger's delivered marks gone (a worker killed between COMMIT and the
    mark: the rows are in, the ledger does not know) and then an operator's replay send every event to
    PostgreSQL again: not one row changes."""
    async with warehoused(tmp_path, transcripts=0.6) as (p, s):
        calls, _ = await p.place_and_send(6)
        await p.run_worker()
        await assert_applied_once(p, s)
        first = await snapshot(s)
        marks = [k async for k in p.redis.scan_iter(match=f"{p.settings.key_prefix}delivered:*:warehouse")]
        assert len(marks) == len(first["events"])
        await p.redis.delete(*marks)
        for call in calls:
            await p.rerun_call(call.call_id)
        await p.run_worker()
        said = await admin.replay(p.settings, p.redis, "warehouse", since_ms=0, until_ms=None, types=())
        assert said.startswith(f"warehouse: {len(first['events'])} events queued")
        await p.run_worker()
        assert await snapshot(s) == first
        await assert_applied_once(p, s)


async def test_a_connection_killed_mid_transaction_leaves_each_call_once(tmp_path: Path) -> None:
    """The sink's backend is terminated while its batch waits inside the transaction (events inserted, the calls
    upsert waiting on a lock the test holds): PostgreSQL rolls it back, the sink writes the batch again on a new
    connection, and every call is there once."""
    async with warehoused(tmp_path) as (p, s):
        await migrate(s.conn, s.name)
        await p.place_and_send(5)
        locker = await asyncpg.connect(POSTGRES_URL)
        hold = locker.transaction()
        await hold.start()
        await locker.execute(f'LOCK TABLE "{s.name}".calls IN EXCLUSIVE MODE')
        worker = asyncio.create_task(p.run_worker())
        try:
            pid = await until(lambda: s.conn.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", APP))
            assert await s.conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await hold.rollback()
            await locker.close()
        await worker
        await assert_applied_once(p, s)


async def test_a_commit_whose_answer_is_lost_is_applied_once(tmp_path: Path) -> None:
    """PostgreSQL commits a batch but the answer never reaches the worker (the connection reset right after
    COMMIT): the batch is written again, and changes nothing the second time."""
    loser = await AnswerLoser("127.0.0.1", PORT, marker=b"COMMIT").start()
    try:
        async with warehoused(tmp_path, port=loser.port) as (p, s):
            await migrate(s.conn, s.name)  # so the first COMMIT through the proxy is a batch's
            await p.place_and_send(5)
            await p.run_worker()
            assert loser.lost
            await assert_applied_once(p, s)
    finally:
        await loser.cut()


async def test_two_workers_racing_apply_each_event_once(tmp_path: Path) -> None:
    """Two workers take the same queue at once (and migrate the same empty schema at start): each call is
    in `calls` once, each event in `events` once."""
    async with warehoused(tmp_path) as (p, s):
        await p.place_and_send(20)
        await asyncio.gather(p.run_worker(), p.run_worker())
        await assert_applied_once(p, s)


async def test_two_sinks_writing_the_same_events_at_once_neither_fail_nor_double() -> None:
    """Two connections upsert the same 200 calls concurrently, in opposite orders: no deadlock (rows are locked
    in key order), no error, one row each."""
    events = [make_event() for _ in range(200)]
    async with schema() as s:
        sinks = [await open_sink(s.url(), name="warehouse", options=SinkOptions(timeout_s=5.0)) for _ in range(2)]
        try:
            outcomes = await asyncio.gather(
                *(sinks[0].publish(e, idempotency_key="k") for e in events),
                *(sinks[1].publish(e, idempotency_key="k") for e in reversed(events)), return_exceptions=True)
        finally:
            for sink in sinks:
                await sink.close()
        assert outcomes == [None] * 400
        assert await s.counts() == {"calls": 200, "call_transcripts": 0, "events": 200}
