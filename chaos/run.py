"""One chaos run: the whole service on loopback, faults on a schedule, then the bar measured.

A private Redis with AOF on a free port, the receiver, two workers and the Wavix sandbox (429s, 5xx,
slow and dropped answers, dropped webhooks, duplicates) as processes; the Slack stand-in and the
webhook destination's endpoint in this process. The workers' routing file (chaos/sinks.py) sends every
event to three destinations: the Redis Stream, that endpoint, and a JetStream stream of the run's own.

The sandbox places the calls and sends their webhooks at a steady rate; meanwhile the plan's actions run
at their times: a worker killed with -9 (and started again at once, as a supervisor would), Redis stopped
gracefully for 2 s, Redis killed with -9 for 2 s. Then the run drains (bounded: until every destination
has every acknowledged call's event and no delivery is in flight or queued, so a late repeat is counted
too) and chaos/report.py measures it. Everything is bounded in count and time; only loopback is used.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from chaos import report, sinks
from chaos.redis import PrivateRedis, free_port
from chaos.roles import Role
from contract import redisurl
from contract.events import COMPLETED, event_id
from sandbox.slack import SlackStandIn
from sandbox.slack import serve as serve_slack

TOKEN = "chaos-token-" + "c" * 24
API_KEY = "sandbox-api-key"
OUTAGE_S = 2.0
_CALL_JOB = "wavix:call:"
_HELD = re.compile(rf"^arq:in-progress:{_CALL_JOB}(.+)$")


@dataclass(frozen=True)
class Plan:
    """How many calls at what rate, which faults when (seconds after sending starts), how long to drain."""

    calls: int = 4000
    rate: float = 40.0
    actions: tuple[tuple[float, str], ...] = (
        (15, "kill_worker"), (30, "restart_redis"), (45, "kill_worker"), (60, "kill_redis"), (75, "kill_worker"),
    )
    drain_s: float = 120.0
    seed: int = 7


# drain_s: past a killed attempt's 45 s lease (workers/deliver/delivery.py LEASE_S), so its late repeat is counted
SHORT = Plan(calls=200, rate=40.0, actions=((1.5, "kill_worker"), (3.0, "restart_redis")), drain_s=90.0)


@dataclass
class Run:
    plan: Plan
    workdir: Path
    redis: PrivateRedis
    receiver: Role
    workers: list[Role]
    sandbox: Role
    slack: SlackStandIn
    hooks: sinks.HookCounter
    nats: sinks.NatsStream
    held: list[tuple[float, list[str]]] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=lambda: {"restart_redis": 0, "kill_redis": 0})

    @property
    def results_path(self) -> Path:
        return self.workdir / "webhooks.ndjson"


# The sandbox's faults and repeats (docs/chaos.md), the same in the several-host run (chaos/ha/)
SANDBOX_FAULTS = (
    "--transcript-share", "0", "--duplicates", "0.1", "--drop-webhooks", "0.01", "--fault-429", "0.03",
    "--fault-5xx", "0.05", "--fault-slow", "0.01", "--slow-delay", "12", "--fault-drop", "0.01",
)


def role_env(redis_url: str, api_url: str, slack_url: str, routing: Path) -> dict[str, str]:
    """The environment of every `wavix-events` role of a run: its Redis, the sandbox's API, Slack, the routing."""
    env = {**os.environ, "REDIS_URL": redis_url, "WEBHOOK_TOKENS": TOKEN, "WAVIX_API_KEY": API_KEY,
           "WAVIX_API_URL": api_url, "SLACK_WEBHOOK_URL": f"{slack_url}/services/T/B/X",
           "RETRY_MAX_DELAY": "5", "JOB_COMPLETION_WAIT": "5", "TRANSCRIPT_POLL": "3600", "LOG_LEVEL": "INFO"}
    for name in ("QUEUE_NAME", "KEY_PREFIX", "EVENTS_STREAM", "DEAD_LETTER_STREAM", "SINKS_CONFIG"):
        env.pop(name, None)  # the defaults, on the run's own Redis
    env["SINKS_CONFIG"] = str(routing)
    return env


def _roles(plan: Plan, workdir: Path, redis_url: str, slack_url: str, routing: Path) -> tuple[Role, list[Role], Role]:
    ports = {name: free_port() for name in ("receiver", "sandbox", "worker-1", "worker-2")}
    env = role_env(redis_url, f"http://127.0.0.1:{ports['sandbox']}", slack_url, routing)
    receiver = Role("receiver", ["serve", "--host", "127.0.0.1", "--port", str(ports["receiver"])], env,
                    workdir / "receiver.log", f"http://127.0.0.1:{ports['receiver']}/healthz")
    workers = [Role(name, ["worker"], {**env, "WORKER_HEALTH_PORT": str(ports[name])}, workdir / f"{name}.log",
                    f"http://127.0.0.1:{ports[name]}/healthz") for name in ("worker-1", "worker-2")]
    target = f"http://127.0.0.1:{ports['receiver']}/webhooks/wavix/{TOKEN}"
    sandbox = Role("sandbox", [
        "simulate", "--port", str(ports["sandbox"]), "--api-key", API_KEY, "--seed", str(plan.seed),
        "--calls", str(plan.calls), "--rate", str(plan.rate), "--target", target,
        "--results", str(workdir / "webhooks.ndjson"), *SANDBOX_FAULTS,
    ], env, workdir / "sandbox.log", None)
    return receiver, workers, sandbox


async def execute(plan: Plan, workdir: Path) -> dict[str, Any]:
    """Runs the plan in `workdir` (logs, Redis data, results) and returns the figures of the bar."""
    workdir.mkdir(parents=True, exist_ok=True)
    redis = PrivateRedis(workdir / "redis").start()
    slack, hooks, stream = SlackStandIn(), await sinks.HookCounter().start(), sinks.NatsStream()
    try:
        await stream.create()
        routing = sinks.routing_file(workdir / "sinks.yaml", redis.url, hooks.url, stream.name, stream.subject)
        async with serve_slack(slack) as slack_url:
            receiver, workers, sandbox = _roles(plan, workdir, redis.url, slack_url, routing)
            run = Run(plan, workdir, redis, receiver, workers, sandbox, slack, hooks, stream)
            try:
                for role in (receiver, *workers):
                    await asyncio.to_thread(role.start)
                return await _drive(run)
            finally:
                for role in (sandbox, *workers, receiver):
                    await asyncio.to_thread(role.stop)
    finally:
        await stream.delete()
        await hooks.stop()
        redis.kill()


async def _drive(run: Run) -> dict[str, Any]:
    started = time.monotonic()
    await asyncio.to_thread(run.sandbox.start)
    pending = sorted(run.plan.actions)
    send_deadline = started + run.plan.calls / run.plan.rate + 120
    while not run.results_path.exists() and time.monotonic() < send_deadline:
        for worker in run.workers:
            await asyncio.to_thread(worker.check)
        if pending and time.monotonic() - started >= pending[0][0]:
            await _act(run, pending.pop(0)[1])
        await asyncio.sleep(0.1)
    for _, action in pending:  # sending ended first (a short plan on a fast machine): act anyway
        await _act(run, action)
    figures = await _drain(run)
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


async def _act(run: Run, action: str) -> None:
    if action == "kill_worker":
        worker = run.workers[sum(w.kills for w in run.workers) % len(run.workers)]
        run.held.append((time.time(), await in_flight(run.redis.url)))
        await asyncio.to_thread(worker.kill)
        return
    stop = run.redis.stop if action == "restart_redis" else run.redis.kill
    await asyncio.to_thread(stop)
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(run.redis.start)
    run.restarts[action] += 1


async def in_flight(url: str, *, queued: bool = False) -> list[str]:
    """Calls whose process_call job some worker holds right now (`queued`: or that waits in the queue)."""
    redis = redisurl.client(url)
    try:
        keys = [k.decode() async for k in redis.scan_iter(match="arq:in-progress:*", count=1000)]
        waiting = await redis.zrange("wavix:queue", 0, -1) if queued else []
    finally:
        await redisurl.close(redis)
    held = [m.group(1) for k in keys if (m := _HELD.match(k))]
    return held + [j.decode().removeprefix(_CALL_JOB) for j in waiting if j.startswith(_CALL_JOB.encode())]


async def _drain(run: Run) -> dict[str, Any]:
    """Waits (bounded) until every destination has every acknowledged call's event, every alert went out and
    no delivery is in flight or queued (a repeat after a lease runs out comes late); then measures."""
    deadline = time.monotonic() + run.plan.drain_s
    while True:
        for worker in run.workers:
            await asyncio.to_thread(worker.check)
        figures = await measure(run)
        missing = any(d["missing"] for d in figures["destinations"].values())
        alerted = figures["alerts_sent"] >= figures["alerts_expected"]
        if (not missing and alerted and not figures["pending_deliveries"]) or time.monotonic() > deadline:
            return figures
        await asyncio.sleep(1.0)


async def pending_deliveries(redis: Redis) -> int:
    """Deliveries not over yet: attempts holding a lease, and `deliver` jobs waiting in the queue."""
    leases = [k async for k in redis.scan_iter(match="wavix:delivering:*", count=1000)]
    queued = [j for j in await redis.zrange("wavix:queue", 0, -1) if j.startswith(b"wavix:deliver:")]
    return len(leases) + len(queued)


async def measure(run: Run) -> dict[str, Any]:
    redis = Redis.from_url(run.redis.url)
    try:
        events = await report.read_events(redis, "wavix:events")
        pending = await pending_deliveries(redis)
    finally:
        await redis.aclose()
    results = report.load_results(run.results_path)
    ok, refused = report.acknowledged(results)
    missing = sorted(c for c in ok if events.per_call.get(c) != 1)
    sent, twice = report.alerts_sent(run.slack.accepted())
    held = [events.at_ms[c] / 1000 - at for at, calls in run.held for c in calls if c in events.at_ms]
    logs = "".join(w.log.read_text(errors="replace") for w in run.workers)
    expected = [event_id(c, COMPLETED) for c in ok]
    hooks = run.hooks
    destinations = {
        "redis": sinks.figures(events.per_id, expected),
        "webhook": {**sinks.figures(hooks.per_event, expected), "bad_signatures": hooks.bad_signatures,
                    "redelivered": hooks.redelivered, "redelivered_changed": hooks.redelivered_changed},
        "nats": sinks.figures(await run.nats.per_event(), expected),
    }
    return {
        "calls": run.plan.calls, "calls_dropped": run.plan.calls - len(ok | refused) if results else None,
        "calls_unacknowledged": len(refused), "calls_acknowledged": len(ok),
        "acknowledged_with_one_completed_pct": round(100 * (len(ok) - len(missing)) / max(1, len(ok)), 2),
        "acknowledged_missing": missing[:20], "duplicate_event_ids": events.duplicate_ids,
        "destinations": destinations, "pending_deliveries": pending,
        "webhook_repeats": f"{hooks.redelivered} / {hooks.bad_signatures}",
        "alerts_sent": sent, "alerts_expected": events.alerts_expected, "alerts": f"{sent} / {events.alerts_expected}",
        "calls_alerted_twice": twice, "worker_kills": sum(w.kills for w in run.workers),
        "worker_unexpected_exits": sum(len(w.unexpected_exits) for w in run.workers),
        "workers": f"{sum(w.kills for w in run.workers)} / {sum(len(w.unexpected_exits) for w in run.workers)}",
        "redis": f"{run.restarts['restart_redis']} / {run.restarts['kill_redis']}",
        "outage_lines": f"{logs.count('worker.redis_lost')} / {logs.count('worker.redis_back')}",
        "held_calls": len(held), "held_p99_s": report.p99(held),
    }
