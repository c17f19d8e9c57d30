"""The short chaos run inside `make test`: 200 calls through receiver, two workers and a faulty sandbox, one
worker killed with -9 and Redis restarted gracefully mid-load, every event routed to three destinations (the
Redis Stream, a signed webhook, NATS JetStream). The bar of `make chaos` holds (docs/chaos.md)."""

from __future__ import annotations

from chaos import report
from chaos.run import SHORT, execute


async def test_a_short_chaos_run_loses_no_acknowledged_call_and_repeats_nothing_a_consumer_cannot_drop(tmp_path):
    """Every acknowledged call has exactly one completed event, at every destination: none missing on the Redis
    Stream, the webhook or NATS, no event id taken in twice by any of them (a webhook redelivery, a delivery
    whose mark was not written after the endpoint's 2xx, carries the first POST's webhook-id and body, and
    its consumer drops it), and every signature verifies. Each alert once, no worker exited unless killed,
    each worker said once that Redis went and once that it came back, and nothing was still in flight when
    the run was measured."""
    figures = await execute(SHORT, tmp_path)
    assert report.verdict(figures) == [], figures
    assert figures["calls_acknowledged"] >= SHORT.calls // 2  # the rest were dropped or met the Redis restart
    assert figures["acknowledged_with_one_completed_pct"] == 100.0
    assert figures["duplicate_event_ids"] == 0
    destinations = figures["destinations"]
    assert set(destinations) == {"redis", "webhook", "nats"}
    for name, line in destinations.items():
        assert line["missing"] == 0, (name, line)
        assert line["distinct"] >= figures["calls_acknowledged"], (name, line)
        assert line["duplicates"] == 0, (name, line)
    webhook = destinations["webhook"]
    assert webhook["bad_signatures"] == 0 and webhook["redelivered_changed"] == 0, webhook
    assert figures["pending_deliveries"] == 0
    assert figures["worker_kills"] == 1 and figures["worker_unexpected_exits"] == 0
    assert figures["redis"] == "1 / 0"
    assert figures["outage_lines"] == "2 / 2", figures
