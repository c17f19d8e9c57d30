"""`python -m bench.redis_cost`: what one call costs Redis (commands, CPU, memory), on a Redis of its own.

CALLS calls go through the real pipeline: the sandbox's webhooks into the receiver app (in-process, as
tests/pipeline.py runs it), then the real arq worker in burst mode with our settings (WORKER_CONCURRENCY
jobs at once) fetches each call from the sandbox, enriches it and publishes its events to EVENTS_STREAM,
then one reconcile pass lists the same calls (all seen). Redis is a private `redis-server` (chaos/redis.py:
a free loopback port, AOF on as in production) with the default names (`wavix:`), so INFO counts this run
only. Between the phases `INFO commandstats`, `INFO cpu` and `used_memory` are read:

    receiver   the webhooks: dedup mark and job, one enqueue script each (ACK_REPLICAS=0: no WAIT)
    worker     the jobs to their end (claim, record, publish, ledger, finish) and what they leave behind
    reconcile  one pass over the same calls; each call is listed RECONCILE_LOOKBACK / RECONCILE_INTERVAL
               times (24 with the defaults), so a pass's cost per call is multiplied by that in `per_call`

Commands are counted as Redis counts them: a script's own commands (`redis.call`) are included, and the
script call itself (EVALSHA) too. A second run of the same calls with MONITOR attached splits them, phase by
phase (an ECHO marks each boundary), into what clients sent and what ran inside scripts; its CPU is not used
(MONITOR costs). What clients sent per call is `round_trips_per_call_<phase>` (receiver, worker, reconcile):
every command a client sent counts once, an EVALSHA as one whatever its script runs, and each command of a
pipeline or MULTI/EXEC block as one, though the block shares one network round trip.
INFO, SCAN, MEMORY and MONITOR (the benchmark's own) and arq's one INFO at start are left out. CPU is the
redis-server process's (used_cpu_user + used_cpu_sys, AOF thread included) and its main thread's, which
runs every command and is what one Redis saturates first. Memory: `used_memory` after each phase, and
MEMORY USAGE (SAMPLES 0) of every key at the end, grouped by the key's shape.

Two profiles, both in the current spec's body: `post_call` (one post-call webhook a call, an account without
transcription: Wavix answers the first transcript request 403 "not provisioned" and the worker stops asking
for an hour; the floor) and `full` (on-call events too, 4-5 webhooks a call of which one starts work;
transcripts for 60 % of answered human calls, with their transcription-completed webhooks; the calls without
one are polled TRANSCRIPT_WAIT / TRANSCRIPT_POLL = 6 s / 1 s, where the defaults, 1800 s / 30 s, poll more:
each poll is one job run, counted in `jobs`). Also measured: one idle worker
process's polls (a cost per second, not per call), and redis-benchmark's SET on the same machine, to carry
the figures elsewhere. Written to bench/results.json under `redis_cost`.

    python -m bench.redis_cost [--calls 1000] [--profile post_call|full|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis as redis_sync
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from bench.results import record
from chaos.redis import PrivateRedis
from contract import logs
from contract.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import serve as serve_sandbox
from sandbox.state import Sandbox
from sandbox.webhooks import Variant, send_webhooks
from service.app import create_app
from workers.fetch.listed import ListedIntake
from workers.fetch.reconcile import reconcile_pass
from workers.fetch.wavix import WavixClient, create_http_client
from workers.retry import RetryPolicy
from workers.runtime.settings import create_worker

TOKEN = "bench-token-" + "r" * 24
SEED = 2207
OURS = {"info", "scan", "memory", "memory|usage", "monitor", "echo", "ttl"}  # the bench's own reads
OURS |= {"zcard"}  # a burst worker's "is the queue empty" after each poll: not in a worker that runs for good
IDLE_S = 5.0
PHASES = ("receiver", "worker", "reconcile")
PROFILES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "post_call": ({"transcript_share": 0.0, "faults": Faults(forbidden_transcript=1.0)}, {"variants": [Variant.SPEC]}),
    "full": ({}, {"variants": [Variant.SPEC], "on_call_events": True, "transcription_delay_s": 0.0}),
}
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|\b\d{6,}\b")


class Snapshot:
    """The counters of one moment: calls per command, CPU seconds, bytes in use."""

    def __init__(self, info: dict[str, Any], cpu: dict[str, Any], memory: dict[str, Any]) -> None:
        self.calls = Counter({name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in info.items()
                              if name.removeprefix("cmdstat_") not in OURS})
        self.cpu_s = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        self.main_cpu_s = _main_cpu(cpu)
        self.used_memory = int(memory["used_memory"])
        self.at = time.monotonic()

    @classmethod
    async def take(cls, redis: Redis) -> Snapshot:
        return cls(await redis.info("commandstats"), await redis.info("cpu"), await redis.info("memory"))


def delta(before: Snapshot, after: Snapshot, calls: int) -> dict[str, Any]:
    """One phase, per call."""
    commands = after.calls - before.calls
    return {"commands": round(sum(commands.values()) / calls, 2),
            "by_command": {k: round(v / calls, 2) for k, v in commands.most_common()},
            "cpu_us": round((after.cpu_s - before.cpu_s) / calls * 1e6, 1),
            "main_thread_cpu_us": round((after.main_cpu_s - before.main_cpu_s) / calls * 1e6, 1),
            "memory_bytes": round((after.used_memory - before.used_memory) / calls),
            "seconds": round(after.at - before.at, 2)}


def settings_for(redis_url: str, wavix_url: str, config: SandboxConfig) -> Settings:
    return Settings.from_env({
        "REDIS_URL": redis_url, "WEBHOOK_TOKENS": TOKEN, "WAVIX_API_URL": wavix_url, "WAVIX_API_KEY": config.api_key,
        "WORKER_HEALTH_PORT": "0", "RECONCILE_INTERVAL": "0", "TRANSCRIPT_POLL": "1", "TRANSCRIPT_WAIT": "6",
        "LOG_LEVEL": "WARNING"})


class Monitor:
    """MONITOR's counts of (phase, source, command) while a block runs: source `client` (a round trip: what a
    client sent, EVALSHA included) or `lua` (run inside a script). `phase(name)` sends an ECHO that the reader
    sees after everything that ran before it, and counts what follows under `name`."""

    def __init__(self, redis: Redis | None) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._redis = redis
        self._marker = f"redis-cost-{time.monotonic_ns()}"

    async def phase(self, name: str) -> None:
        if self._redis is not None:
            await self._redis.echo(f"{self._marker}:{name}")  # another connection: seen after all that ran before

    def per_call(self, phase: str, source: str, calls: int) -> float:
        return round(sum(n for (p, s, _), n in self.counts.items() if p == phase and s == source) / calls, 2)

    def commands(self, phase: str, source: str, calls: int) -> dict[str, float]:
        return {command: round(n / calls, 2) for (p, s, command), n in self.counts.most_common()
                if p == phase and s == source}


@asynccontextmanager
async def monitored(redis: Redis | None, first: str) -> AsyncIterator[Monitor]:
    """A Monitor counting from phase `first` while the block runs; ends by sending an ECHO and reading until it
    is seen, so nothing is left unread. No client: counts nothing."""
    counter = Monitor(redis)
    if redis is None:
        yield counter
        return
    end = f"{counter._marker}:end"
    async with redis.monitor() as monitor:
        async def read() -> None:
            phase = first
            async for line in monitor.listen():
                words = line["command"].split()
                if words and words[0].lower() == "echo" and counter._marker in line["command"]:
                    if end in line["command"]:
                        return
                    phase = line["command"].rpartition(":")[2].strip('"')
                    continue
                if words and words[0].lower() not in OURS:
                    counter.counts[phase, "lua" if line.get("client_type") == "lua" else "client",
                                   words[0].lower()] += 1
        reader = asyncio.create_task(read())
        try:
            yield counter
        finally:
            await redis.echo(end)
            await asyncio.wait_for(reader, 60)


@dataclass
class Phases:
    """What one run of the pipeline left to read: a Snapshot before and after each phase, MONITOR's counts
    (empty unless asked for) and the worker's job runs."""

    snapshots: list[Snapshot]
    monitor: Monitor
    jobs: int


async def run_calls(redis_url: str, profile: str, calls: int, redis: Redis, *, monitor: bool = False) -> Phases:
    """The pipeline over `calls` calls: receiver, worker, reconcile."""
    sandbox_options, send_options = PROFILES[profile]
    config = SandboxConfig(seed=SEED, **sandbox_options)
    sandbox = Sandbox(config)
    watcher = Redis.from_url(redis_url) if monitor else None
    async with serve_sandbox(sandbox) as wavix_url:
        settings = settings_for(redis_url, wavix_url, config)
        async with AsyncTestClient(app=create_app(settings)) as receiver:
            placed = sandbox.place(calls)
            snapshots = [await Snapshot.take(redis)]
            async with monitored(watcher, PHASES[0]) as counter:
                results = await send_webhooks(placed, f"/webhooks/wavix/{TOKEN}", client=receiver, rate=5000.0,
                                              on_first_send=sandbox.mark_sent, **send_options)
                refused = [r for r in results if r.status != 200]
                assert not refused, f"{len(refused)} webhooks not accepted, e.g. {refused[0]}"
                snapshots.append(await Snapshot.take(redis))
                await counter.phase(PHASES[1])
                jobs = await work(settings)
                snapshots.append(await Snapshot.take(redis))
                await counter.phase(PHASES[2])
                await reconcile_once(settings, redis, calls)
                snapshots.append(await Snapshot.take(redis))
    if watcher is not None:
        await watcher.aclose()
    return Phases(snapshots, counter, jobs)


async def work(settings: Settings, *, idle_s: float = 0.0) -> int:
    """The real worker with WORKER_POLL_DELAY's polls: in burst mode until the queue is empty, or for `idle_s`
    seconds as a worker that runs for good; returns the job runs."""
    worker = create_worker(settings, burst=not idle_s, handle_signals=False)
    try:
        if idle_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.main(), idle_s)
        else:
            await worker.main()
    finally:
        await worker.close()
    assert worker.jobs_failed == 0, f"{worker.jobs_failed} jobs failed"
    return worker.jobs_complete + worker.jobs_retried  # job runs: a transcript poll that finds none is a retry


async def idle_worker(directory: Path) -> dict[str, float]:
    """One worker process with nothing to do, IDLE_S seconds: its polls' cost to Redis each second, less what
    the same Redis spends alone in as long (its own timers, `hz`)."""
    with PrivateRedis(directory / "idle") as server:
        redis = Redis.from_url(server.url)
        try:
            settings = settings_for(server.url, "http://127.0.0.1:9", SandboxConfig())
            alone = await Snapshot.take(redis)
            await asyncio.sleep(IDLE_S)
            before = await Snapshot.take(redis)
            started = time.monotonic()
            await work(settings, idle_s=IDLE_S)
            seconds = time.monotonic() - started
            after = await Snapshot.take(redis)
        finally:
            await redis.aclose()
    baseline_us_per_s = (before.main_cpu_s - alone.main_cpu_s) * 1e6 / IDLE_S
    idle = delta(before, after, 1)
    return {"commands_per_s": round(idle["commands"] / seconds, 1),
            "redis_alone_cpu_us_per_s": round(baseline_us_per_s),
            "main_thread_cpu_us_per_s": round(idle["main_thread_cpu_us"] / seconds - baseline_us_per_s),
            "poll_delay_s": settings.worker_poll_delay}


def calibrate(directory: Path) -> dict[str, float]:
    """Main-thread CPU per SET of `redis-benchmark` on this machine (50 clients, no pipelining, and 16 deep),
    to carry the figures to another machine: calls/s there ~ its SET/s / (SETs a call costs here)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return {}
    out: dict[str, float] = {}
    with PrivateRedis(directory / "calibrate") as server, redis_sync.Redis(port=server.port) as redis:
        for depth in (1, 16):
            before = _main_cpu(redis.info("cpu"))
            subprocess.run([binary, "-p", str(server.port), "-t", "set", "-n", "200000", "-c", "50",
                            "-P", str(depth), "-q"], check=True, capture_output=True, timeout=120)
            out[f"set_main_thread_cpu_us_p{depth}"] = round((_main_cpu(redis.info("cpu")) - before) / 200_000 * 1e6, 2)
    return out


def _main_cpu(cpu: dict[str, Any]) -> float:
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


async def reconcile_once(settings: Settings, redis: Redis, calls: int) -> None:
    """One pass over the last RECONCILE_LOOKBACK seconds (the sandbox dates its calls within the last hour)."""
    http = create_http_client(settings, concurrency=2)
    try:
        wavix, intake = WavixClient.from_settings(http, settings), ListedIntake.from_settings(redis, settings)
        report = await reconcile_pass(wavix, intake, now=time.time(), lookback=settings.reconcile_lookback,
                                      policy=RetryPolicy(), settle_s=0.0)
    finally:
        await http.aclose()
    assert report.in_window == calls and report.queued == 0, report


async def key_shapes(redis: Redis, calls: int) -> dict[str, dict[str, Any]]:
    """Bytes per call kept at the end, per key shape (ids replaced by `{id}`), with a sample TTL in s."""
    sizes: Counter[str] = Counter()
    ttls: dict[str, int] = {}
    async for key in redis.scan_iter(count=10_000):
        shape = _ID.sub("{id}", key.decode(errors="replace"))
        sizes[shape] += int(await redis.memory_usage(key, samples=0) or 0)
        ttls.setdefault(shape, int(await redis.ttl(key)))
    return {shape: {"bytes_per_call": round(size / calls), "ttl_s": ttls[shape]}
            for shape, size in sizes.most_common() if size / calls >= 1}


async def measure(profile: str, calls: int, directory: Path) -> dict[str, Any]:
    """The profile on a fresh private Redis (counters, CPU, memory), then again with MONITOR (the split)."""
    out: dict[str, Any] = {"calls": calls}
    with PrivateRedis(directory / f"{profile}-plain") as server:
        redis = Redis.from_url(server.url)
        try:
            plain = await run_calls(server.url, profile, calls, redis)
            out.update({phase: delta(plain.snapshots[i], plain.snapshots[i + 1], calls)
                        for i, phase in enumerate(PHASES)})
            out["jobs"] = round(plain.jobs / calls, 2)
            out["keys"] = await key_shapes(redis, calls)
        finally:
            await redis.aclose()
    with PrivateRedis(directory / f"{profile}-monitored") as server:
        redis = Redis.from_url(server.url)
        try:
            monitor = (await run_calls(server.url, profile, calls, redis, monitor=True)).monitor
        finally:
            await redis.aclose()
    for phase in PHASES:  # round trips: the commands clients sent (EVALSHA one), per call, phase by phase
        out[f"round_trips_per_call_{phase}"] = monitor.per_call(phase, "client", calls)
        out[phase]["round_trips"] = monitor.per_call(phase, "client", calls)
        out[phase]["run_in_scripts"] = monitor.per_call(phase, "lua", calls)
        out[phase]["client_commands"] = monitor.commands(phase, "client", calls)
    out["sent_by_clients"] = round(sum(monitor.per_call(phase, "client", calls) for phase in PHASES), 2)
    out["run_in_scripts"] = round(sum(monitor.per_call(phase, "lua", calls) for phase in PHASES), 2)
    return summarise(out)


def summarise(out: dict[str, Any]) -> dict[str, Any]:
    """Adds `per_call`: receiver + worker + reconcile x passes per call, and the one-core estimate."""
    passes = Settings().reconcile_lookback / Settings().reconcile_interval
    parts = [(out["receiver"], 1.0), (out["worker"], 1.0), (out["reconcile"], passes)]
    total = {key: round(sum(p[key] * weight for p, weight in parts), 1)
             for key in ("commands", "cpu_us", "main_thread_cpu_us")}
    total["memory_bytes"] = sum(p["memory_bytes"] for p, _ in parts[:2])
    total["calls_per_s_one_core"] = round(1e6 / total["main_thread_cpu_us"])
    total["reconcile_passes_per_call"] = passes
    out["per_call"] = total
    return out


def report(profile: str, out: dict[str, Any]) -> str:
    per = out["per_call"]
    lines = [f"redis_cost {profile} ({out['calls']} calls; per call, and the phase's seconds):",
             f"  {'phase':<10} {'commands':>9} {'cpu µs':>8} {'main µs':>8} {'bytes':>8} {'s':>6}  top commands"]
    for phase in PHASES:
        p = out[phase]
        top = ", ".join(f"{k} {v:g}" for k, v in list(p["by_command"].items())[:6])
        lines.append(f"  {phase:<10} {p['commands']:>9} {p['cpu_us']:>8} {p['main_thread_cpu_us']:>8}"
                     f" {p['memory_bytes']:>8} {p['seconds']:>6}  {top}")
    lines.append(f"  total      {per['commands']:>9} {per['cpu_us']:>8} {per['main_thread_cpu_us']:>8}"
                 f" {per['memory_bytes']:>8}  (reconcile x {per['reconcile_passes_per_call']:g} passes)")
    lines.append(f"  round trips (commands clients sent) {out['sent_by_clients']}, run in scripts"
                 f" {out['run_in_scripts']}; by phase:")
    lines += [f"    {phase:<10} {out[phase]['round_trips']:>6} round trips  {out[phase]['client_commands']}"
              for phase in PHASES]
    lines.append(f"  {out['jobs']} job runs a call; one Redis main thread at 100 %:"
                 f" ~{per['calls_per_s_one_core']} calls/s (estimate)")
    lines += [f"  key {shape:<48} {v['bytes_per_call']:>6} B/call  ttl {v['ttl_s']} s"
              for shape, v in out["keys"].items()]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="redis-cost-") as directory:
        results["idle_worker"] = await idle_worker(Path(directory))
        print(f"redis_cost: one idle worker process costs Redis {results['idle_worker']}")
        results["calibration"] = calibrate(Path(directory))
        print(f"redis_cost: redis-benchmark SET on this machine, main-thread CPU: {results['calibration']}")
        for profile in (PROFILES if args.profile == "both" else [args.profile]):
            results[profile] = await measure(profile, args.calls, Path(directory))
            print(report(profile, results[profile]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--profile", choices=[*PROFILES, "both"], default="both")
    args = parser.parse_args(argv)
    logs.configure("ERROR")
    started = time.monotonic()
    results = asyncio.run(main_async(args))
    floor = results.get("post_call", results.get("full", {}))["per_call"]
    floor_profile = results.get("post_call", results.get("full", {}))
    record("redis_cost", {**results, "commands_per_call": floor["commands"], "cpu_us_per_call": floor["cpu_us"],
                          "bytes_per_call": floor["memory_bytes"],
                          "calls_per_s_one_core": floor["calls_per_s_one_core"],
                          **{f"round_trips_per_call_{phase}": floor_profile[f"round_trips_per_call_{phase}"]
                             for phase in PHASES}})
    print(f"  [{time.monotonic() - started:.0f}s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
