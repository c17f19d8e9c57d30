"""The short chaos run inside `make test`: 200 calls through receiver, two workers and a faulty sandbox, one
worker killed with -9 and Redis restarted gracefully mid-load. The bar of `make chaos` holds (docs/chaos.md)."""

from __future__ import annotations

from chaos import report
from chaos.run import SHORT, execute


async def test_a_short_chaos_run_loses_no_acknowledged_call_and_publishes_nothing_twice(tmp_path):
    """Every acknowledged call has exactly one completed event, no event id twice, each alert once, no worker
    exited unless killed, and each worker said once that Redis went and once that it came back."""
    figures = await execute(SHORT, tmp_path)
    assert report.verdict(figures) == [], figures
    assert figures["calls_acknowledged"] >= SHORT.calls // 2  # the rest were dropped or met the Redis restart
    assert figures["acknowledged_with_one_completed_pct"] == 100.0
    assert figures["duplicate_event_ids"] == 0
    assert figures["worker_kills"] == 1 and figures["worker_unexpected_exits"] == 0
    assert figures["redis"] == "1 / 0"
    assert figures["outage_lines"] == "2 / 2", figures
