"""`wavix-events backfill` fills a PostgreSQL destination through the same path as live calls: the export's
calls are queued, the worker publishes them, the sink writes them; a second backfill changes nothing.

Real sandbox (its NDJSON export), Redis, arq worker and PostgreSQL (tests/helpers/postgres.py).
"""

from __future__ import annotations

import asyncio
import io
from datetime import date
from pathlib import Path

from rich.console import Console

from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL
from tests.helpers.postgres import schema
from tests.pipeline import Pipeline
from tests.test_reconcile import reconciling
from workers.fetch.backfill import run

FEBRUARY = SandboxConfig(seed=24, start="2026-02-01T06:00:00Z", spacing_s=12 * 3600.0, transcript_share=0.0)
ROWS = "SELECT call_id, xmin::text, found_by FROM {s}.calls ORDER BY call_id"


async def backfill_february(p: Pipeline) -> str:
    """`wavix-events backfill --from 2026-02-01 --to 2026-02-28`, then the worker until the queue is empty."""
    out = io.StringIO()
    status = await asyncio.to_thread(run, p.settings, first="2026-02-01", last="2026-02-28",
                                     console=Console(file=out, width=200))
    assert status == 0, out.getvalue()
    await p.run_worker()
    return out.getvalue()


async def test_a_backfill_of_a_past_month_fills_calls(tmp_path: Path) -> None:
    """A month's backfill (56 day-and-type exports) puts each of its 56 calls in `calls` once, `found_by`
    backfill, on the days the sandbox dated them; a second run over the month queues and writes nothing."""
    async with schema() as s:
        stream = f"test:events:{s.name}"
        routing = tmp_path / "sinks.yaml"
        routing.write_text(f"destinations:\n  - name: events\n    url: {REDIS_URL}?stream={stream}\n"
                           f"  - name: warehouse\n    url: {s.url()}\n")
        async with reconciling(FEBRUARY, SINKS_CONFIG=str(routing), EVENTS_STREAM=stream) as (p, _):
            calls = p.sandbox.place(56)
            said = await backfill_february(p)
            first = await s.rows(ROWS)
            said = await backfill_february(p)
            assert "queued 0" in said.splitlines()[-1]
            assert await s.rows(ROWS) == first
            assert sorted(r["call_id"] for r in first) == sorted(c.call_id for c in calls)
            assert {r["found_by"] for r in first} == {"backfill"}
            days = await s.rows("SELECT day, sum(calls)::int AS calls FROM {s}.calls_per_day GROUP BY day ORDER BY day")
            assert [d["day"] for d in days] == [date(2026, 2, n) for n in range(1, 29)]
            assert {d["calls"] for d in days} == {2}
            assert await p.dead_letters() == []
