"""`make demo DEMO_ARGS='--postgres URL'`: the run's calls land in PostgreSQL and the demo shows a query's answer.

The demo runs as a subprocess, as `make demo` runs it (tests/test_demo.py's DemoRun), against the real PostgreSQL;
the schema it writes is the test's own and is dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg

from tests.conftest import REDIS_URL
from tests.helpers.postgres import POSTGRES_URL, url_for
from tests.test_demo import SHORT, DemoRun


async def test_the_demo_writes_its_calls_to_postgresql_and_shows_a_query() -> None:
    """Every completed call of the run is a row of `calls`; the demo prints calls per day and direction (its
    query, and how to drop the schema) and still leaves nothing in Redis."""
    schema = f"test_demo_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        run = await _run(["--calls", "15", *SHORT, "--postgres", url_for(schema)])
        assert run.status == 0 and run.result["completed"] == "15", run
        assert f"PostgreSQL: 15 calls in {schema}.calls" in run.stdout, run
        assert f"FROM {schema}.calls_per_day" in run.stdout and f"DROP SCHEMA {schema} CASCADE" in run.stdout, run
        assert await conn.fetchval(f"SELECT count(*) FROM {schema}.calls") == 15
        assert await conn.fetchval(f"SELECT sum(calls) FROM {schema}.calls_per_day") == 15
        assert run.result["leftover_keys"] == "0", run
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


async def _run(args: list[str]) -> DemoRun:
    return await asyncio.to_thread(DemoRun, args, {**os.environ, "REDIS_URL": REDIS_URL})
