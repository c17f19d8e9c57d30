"""One several-host run: the hosts built, a steady load, the faults on a schedule, the drain, the figures.

The Wavix host places `calls` calls at `rate` a second (4,000 at 40: 100 s of load) and sends their webhooks to
the two receivers through its balancer. Seconds after the load starts (chaos/ha/faults.py): 15, the Redis
primary killed with -9 (the Sentinels promote the replica; the old primary comes back as its replica 10 s
later); 35, worker-2's host cut off the network for 20 s; 65, a Sentinel killed with -9 (back 10 s later);
80, receiver-1's host down for 10 s. Meanwhile every process is watched as a supervisor would (cluster.py).
Then the run drains, bounded by `drain_s`: until every placed call's completed event is at every destination,
every alert went out and no delivery is in flight or queued. A call whose webhook never came is only listed by
reconciliation SETTLE_S (60 s) after it ended, so the drain lasts at least that long past the load's last
second plus one RECONCILE_INTERVAL (20 s here, against 300 s by default). Whole run: about 3 minutes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from chaos.ha import faults, report
from chaos.ha.cluster import Cluster, Load, cluster

POLL_S = 0.2
DRAIN_POLL_S = 2.0


@dataclass(frozen=True)
class Plan:
    """How many calls at what rate, which faults when (seconds after the load starts), how long to drain."""

    calls: int = 4000
    rate: float = 40.0  # calls a second
    faults: tuple[tuple[float, str], ...] = (
        (15, "kill_primary"), (35, "cut_worker"), (65, "kill_sentinel"), (80, "kill_receiver_host"),
    )
    drain_s: float = 200.0
    seed: int = 7
    reconcile_interval: int = 20


def say(began: float, text: str) -> None:
    print(f"chaos-ha t+{time.monotonic() - began:6.1f}s  {text}", flush=True)


async def execute(plan: Plan, workdir: Path) -> dict[str, Any]:
    """Runs the plan in `workdir` (logs, data, results) and returns the figures of the bar."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load = Load(plan.calls, plan.rate, plan.seed, plan.reconcile_interval)
    async with cluster(load, workdir) as c:
        say(started, f"hosts and roles up ({len(c.hosts)} hosts); load: {plan.calls} calls at {plan.rate}/s")
        figures = await _drain(c, plan, await _load(c, plan), started)
        # what Slack received, for tracing an alert sent twice (`--workdir` keeps it)
        (workdir / "slack.ndjson").write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in c.slack.received))
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


async def _load(c: Cluster, plan: Plan) -> list[faults.Fault]:
    """Starts the Wavix host and the faults at their times; returns when the load is over and every fault undone."""
    assert c.wavix is not None
    await asyncio.to_thread(c.wavix.start)
    began = time.monotonic()
    schedule, running = sorted(plan.faults), list[asyncio.Task[faults.Fault]]()
    deadline = began + plan.calls / plan.rate + 120
    while schedule or not all(t.done() for t in running) or not c.results_path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the load did not end in time (see wavix.log)")
        await asyncio.to_thread(c.supervise)
        if schedule and time.monotonic() - began >= schedule[0][0]:
            name = schedule.pop(0)[1]
            say(began, f"fault: {name}")
            running.append(asyncio.create_task(faults.FAULTS[name](c)))
        for task in running:
            if task.done():
                task.result()  # a fault that failed ends the run here
        await asyncio.sleep(POLL_S)
    say(began, "load sent, every fault undone: draining")
    return [t.result() for t in running]


async def _drain(c: Cluster, plan: Plan, done: list[faults.Fault], started: float) -> dict[str, Any]:
    deadline = time.monotonic() + plan.drain_s
    while True:
        await asyncio.to_thread(c.supervise)
        figures = await report.measure(c, done)
        if report.drained(figures) or time.monotonic() > deadline:
            say(started, "drained" if report.drained(figures) else "drain bound reached")
            return figures
        await asyncio.sleep(DRAIN_POLL_S)
