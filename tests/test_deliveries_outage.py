"""A destination down for ten hours gets every event once when it is back; the others are never held up.

Real Redis, RabbitMQ, NATS JetStream and a signed-webhook receiver; the worker's own resources (built by
`workers.runtime.context.startup`) and its own `deliver` job step (`workers.process.deliver`). Time is simulated, not
slept: each `arq.Retry` the step raises says how long arq would wait, and the test's clock jumps there. RabbitMQ
sits behind a TCP proxy that is cut for the outage; the webhook receiver answers 503 until it is over.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from arq import Retry
from arq.constants import job_key_prefix
from redis.asyncio import Redis

from contract.jobs import job_deserializer
from contract.settings import Settings
from tests.helpers.resources import worker_resources
from tests.helpers.sinks import NatsHarness, RabbitHarness, RedisHarness, TcpProxy, WebhookHarness, make_event
from workers import process
from workers.deliver import health
from workers.deliver.delivery import deliver_all

HOUR = 3600.0
OUTAGE_S = 10 * HOUR


@dataclass
class World:
    ctx: dict[str, Any]
    redis: Redis
    settings: Settings
    up: dict[str, Any]
    down: dict[str, Any]
    proxy: TcpProxy


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """Four destinations: `events` (Redis) and `nats` up; `rabbit` (behind a cut proxy) and `crm` (503) down."""
    harnesses = {"events": RedisHarness(), "nats": NatsHarness(), "rabbit": RabbitHarness(), "crm": WebhookHarness()}
    for h in harnesses.values():
        await h.setup()
    proxy = await TcpProxy("127.0.0.1", 5672).start()
    harnesses["crm"].receiver.status = 503  # type: ignore[attr-defined]
    lines = ["destinations:"]
    for name, h in harnesses.items():
        lines += [f"  - name: {name}", f"    url: {h.url(proxy.port if name == 'rabbit' else None)}"]
        lines += [f"    secret: {h.secret}"] if h.secret else []
    (tmp_path / "sinks.yaml").write_text("\n".join(lines) + "\n")
    try:
        async with worker_resources(tmp_path / "sinks.yaml") as (ctx, settings, redis):
            await proxy.cut()
            yield World(ctx, redis, settings, {k: harnesses[k] for k in ("events", "nats")},
                        {k: harnesses[k] for k in ("rabbit", "crm")}, proxy)
    finally:
        await proxy.cut()
        for h in harnesses.values():
            await h.cleanup()


async def queued_deliveries(w: World) -> list[tuple[float, str, Any]]:
    """The `deliver` jobs the first tries left in arq's queue: (seconds until due, job id, argument)."""
    now_ms = (await w.redis.time())[0] * 1000
    out = []
    for jid, score in await w.redis.zrange(w.settings.queue_name, 0, -1, withscores=True):
        record = job_deserializer(await w.redis.get(job_key_prefix + jid.decode()))
        out.append(((score - now_ms) / 1000, jid.decode(), record["a"][0]))
    return out


async def test_ten_hours_down_then_back_gets_every_event_once_and_nothing_dead_lettered(world: World) -> None:
    """Five events to four destinations, two of them down for ten (simulated) hours: the two that are up have
    every event from the first try, before any time passes; the two that are down get each event exactly once
    on the schedule's seventh try (5s, 5m, 30m, 2h, 5h then 10h: the sixth try, at ~7.6 h, still fails; the
    seventh, at ~17.6 h, lands), their health shows the outage while it lasts and clears after, and no
    delivery is dead-lettered."""
    w = world
    events = [make_event() for _ in range(5)]
    ids = sorted(e.id for e in events)
    for event in events:
        await deliver_all(w.ctx["resources"], event, 1)

    for h in w.up.values():  # the healthy destinations waited for nobody
        assert sorted(r.event_id for r in await h.received(5)) == ids
    pending = await queued_deliveries(w)
    assert sorted((a["destination"], a["event_id"]) for _, _, a in pending) == sorted(
        (d, i) for d in w.down for i in ids)
    assert all(4.0 <= due <= 6.0 for due, _, _ in pending), "the first retry is due after ~5 s"

    clock, tries, landed_at = 0.0, Counter[str](), {}
    queue = [(due, jid, arg, 1) for due, jid, arg in pending]
    heapq.heapify(queue)
    outage_seen = False
    while queue:
        clock, jid, arg, job_try = heapq.heappop(queue)
        if clock >= OUTAGE_S and not outage_seen:
            rows = {h.name: h for h in await health.read(w.redis, w.settings.key_prefix, list(w.down))}
            assert all(r.streak > 0 and r.failing_since_ms and r.backlog == 5 for r in rows.values()), rows
            outage_seen = True
            await w.proxy.restore()
            w.down["crm"].receiver.status = 204
        tries[jid] += 1
        try:
            outcome = await process.deliver({"resources": w.ctx["resources"], "job_try": job_try}, arg)
        except Retry as retry:
            heapq.heappush(queue, (clock + (retry.defer_score or 0) / 1000, jid, arg, job_try + 1))
            continue
        assert outcome == "published", outcome
        landed_at[jid] = clock

    assert outage_seen
    assert set(tries.values()) == {6}, "each delivery: six job runs after the inline try, the last one lands"
    assert all(15 * HOUR < t < 20 * HOUR for t in landed_at.values()), landed_at
    for h in w.down.values():
        got = await h.received(5)
        assert Counter(r.event_id for r in got) == Counter(ids), f"{h.kind}: each event exactly once"
    assert await w.redis.xlen(w.settings.dead_letter_stream) == 0
    rows = await health.read(w.redis, w.settings.key_prefix, ["events", "nats", "rabbit", "crm"])
    assert all(r.streak == 0 and r.backlog == 0 and r.dead_letters == 0 and r.last_success_ms for r in rows), rows
    assert {r.name: r.delivered for r in rows} == {"events": 5, "nats": 5, "rabbit": 5, "crm": 5}
    metrics = w.ctx["resources"].metrics
    assert metrics.deliveries.labels("crm", "retried")._value.get() == 5 * 6
