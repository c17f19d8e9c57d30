"""Worker benchmark: our job against arq's no-op job, same worker settings, same run.

1. Throughput. The queue is filled with N jobs, then one worker process (our settings, our serializer,
   WORKER_CONCURRENCY jobs at once) runs them: first a no-op job, then the real job (CDR fetch from the
   sandbox with no faults, enrich, publish to the Redis Stream). Jobs per second come from arq's own
   start/finish times of the jobs, the same for both; the figure is real / no-op.
2. The same real job with the sandbox answering after 20 ms and after 100 ms: calls per second per worker
   process when Wavix is near and when it is far (the sizing table in docs/benchmarks.md).
3. Latency: the receiver (uvicorn), a worker and the sandbox run as processes; webhooks go out at a fixed
   rate and each call's stream entry time minus its webhook's send time is its latency (p50/p99).
4. Memory: the worker's RSS after a warm-up of 1,000 calls, halfway and after all N (default 20,000) of step 1;
   the late growth (halfway -> end) is the leak check (the target's 50,000 -> 100,000 does not fit `make bench`).
5. The floor job (bench/floor_worker.py: the GET and one script only) and the real job without
   `workers.operate.observe` (bench/unobserved_worker.py), over as many jobs as the no-op job.
6. CPU: the worker process's CPU time (bench/proc.py) from the warm-up to the last job, over the jobs run in
   between: `cpu_ms_per_call` for each job of steps 1, 2 and 5, and `cpu_ratio` (no-op / real) and
   `cpu_floor_ratio` (floor / real), the throughput ratios' steadier twins.

    python -m bench.worker [--calls 20000] [--noop-calls 5000] [--slow-calls 3000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from arq.constants import result_key_prefix
from redis.asyncio import Redis

from bench.proc import cpu_ms, rss_kib
from bench.results import record
from contract import redisurl
from contract.jobs import job_deserializer
from contract.redisbatch import BatchedRedis
from contract.webhooks import classify
from sandbox.calls import SimCall
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import spawn
from sandbox.state import Sandbox
from sandbox.webhooks import Variant, post_call_body, send_webhooks
from service.enqueue import Enqueuer
from tests.helpers.servers import free_port, running

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "bench-token-" + "w" * 24
SEED = 4242


class Run:
    """One benchmark run's names: its own queue, stream and key prefix, removed at the end."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.queue, self.stream, self.prefix = f"bench:q:{tag}", f"bench:events:{tag}", f"bench:{tag}:"

    def env(self, wavix_url: str, **extra: str) -> dict[str, str]:
        return {
            "REDIS_URL": REDIS_URL, "QUEUE_NAME": self.queue, "EVENTS_STREAM": self.stream, "KEY_PREFIX": self.prefix,
            "DEAD_LETTER_STREAM": f"{self.prefix}dead", "WAVIX_API_URL": wavix_url, "WAVIX_API_KEY": "bench-key",
            "WORKER_HEALTH_PORT": "0", "TRANSCRIPT_POLL": "3600", "WEBHOOK_TOKENS": TOKEN,
            "WEBHOOK_DEDUP_TTL": "3600", "JOB_EXPIRY": "3600", **extra,
        }

    async def clean(self, redis: Redis) -> None:
        await redis.delete(self.queue, self.stream, f"{self.prefix}dead")
        for pattern in (f"*{self.prefix}*",):
            keys = [k async for k in redis.scan_iter(match=pattern, count=5000)]
            for i in range(0, len(keys), 5000):
                await redis.delete(*keys[i : i + 5000])


def sandbox_config(latency_s: float) -> SandboxConfig:
    return SandboxConfig(seed=SEED, api_key="bench-key", transcript_share=0.0, faults=Faults(latency_s=latency_s))


async def fill(run: Run, calls: Sequence[SimCall]) -> list[str]:
    """Queues one process_call job per call, exactly as the receiver would; returns the job ids."""
    pipe = BatchedRedis(REDIS_URL)
    enqueuer = Enqueuer(pipe, queue_name=run.queue, key_prefix=run.prefix, dedup_ttl_s=3600, job_expiry_s=3600)
    bodies = [post_call_body(c, Variant.SPEC) for c in calls]
    for i in range(0, len(bodies), 2000):
        await asyncio.gather(*(enqueuer.enqueue(classify(b), b) for b in bodies[i : i + 2000]))
    await pipe.aclose()
    return [run.prefix + classify(b).dedup_key for b in bodies]


async def finished(redis: Redis, job_ids: Sequence[str]) -> list[dict[str, Any]]:
    """arq's stored results of the jobs that have finished (start `st` and finish `ft` in ms)."""
    out: list[dict[str, Any]] = []
    for i in range(0, len(job_ids), 5000):
        raw = await redis.mget([result_key_prefix + j for j in job_ids[i : i + 5000]])
        out += [job_deserializer(r) for r in raw if r is not None]
    return out


async def count_finished(redis: Redis, job_ids: list[str]) -> list[str]:
    """The ids in `job_ids` whose result is not stored yet (EXISTS only: the poll must not steal the worker's CPU)."""
    waiting: list[str] = []
    for i in range(0, len(job_ids), 5000):
        chunk = job_ids[i : i + 5000]
        async with redis.pipeline(transaction=False) as pipe:
            for j in chunk:
                pipe.exists(result_key_prefix + j)
            waiting += [j for j, there in zip(chunk, await pipe.execute(), strict=True) if not there]
    return waiting


async def work(run: Run, env: dict[str, str], module: str, job_ids: Sequence[str], warmup: int) -> dict[str, Any]:
    """Runs one worker process over the filled queue; jobs/s from arq's timings, RSS after warm-up and at the end."""
    redis = redisurl.client(REDIS_URL)
    process = subprocess.Popen([sys.executable, "-m", module, *(["worker"] if module == "wavix_events.cli" else [])],
                               env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss_warm = rss_mid = 0
    cpu_warm, done_warm = 0.0, 0  # CPU from the warm-up on: the imports and start are not a call's cost
    try:
        deadline, waiting = time.monotonic() + 240, list(job_ids)
        while time.monotonic() < deadline:
            waiting = await count_finished(redis, waiting)  # only the unfinished ones are asked about again
            done_count = len(job_ids) - len(waiting)
            if not rss_warm and done_count >= warmup:
                rss_warm, cpu_warm, done_warm = rss_kib(process.pid), cpu_ms(process.pid), done_count
            if not rss_mid and done_count >= len(job_ids) // 2:
                rss_mid = rss_kib(process.pid)
            if not waiting:
                break
            if process.poll() is not None:
                raise RuntimeError(f"{module} exited with {process.returncode}")
            await asyncio.sleep(0.25)
        rss_end, cpu_end = rss_kib(process.pid), cpu_ms(process.pid)
        done = await finished(redis, job_ids)
    finally:
        process.terminate()
        process.wait(timeout=30)
        await redis.aclose()
    failures = sum(1 for d in done if not d.get("s"))
    span = (max(d["ft"] for d in done) - min(d["st"] for d in done)) / 1000
    counted = len(done) - done_warm
    return {"jobs": len(done), "failed": failures, "seconds": round(span, 3), "per_s": round(len(done) / span, 1),
            "rss_warm_kib": rss_warm, "rss_mid_kib": rss_mid, "rss_end_kib": rss_end,
            "cpu_ms_per_call": round((cpu_end - cpu_warm) / counted, 3) if counted > 0 else None}


async def throughput(calls: int, latency_s: float, *, noop_calls: int = 0) -> dict[str, Any]:
    """With `noop_calls`: the no-op job, the floor job and the real job without `workers.operate.observe` over
    `noop_calls` jobs each; then the real job over `calls`, same settings."""
    results: dict[str, Any] = {}
    async with spawn(sandbox_config(latency_s), calls=calls, startup_timeout_s=120) as wavix_url:
        local = Sandbox(sandbox_config(latency_s)).place(calls)  # the same calls: the seed decides them
        runs = [("real", "wavix_events.cli", calls)]
        if noop_calls:
            runs[:0] = [("noop", "bench.noop_worker", noop_calls), ("floor", "bench.floor_worker", noop_calls),
                        ("unobserved", "bench.unobserved_worker", noop_calls)]
        for name, module, count in runs:
            run = Run()
            redis = redisurl.client(REDIS_URL)
            try:
                job_ids = await fill(run, local[:count])
                results[name] = await work(run, run.env(wavix_url), module, job_ids, warmup=min(1000, count // 4))
                results[name]["published"] = await redis.xlen(run.stream) if name == "real" else None
            finally:
                await run.clean(redis)
                await redis.aclose()
    return results


async def latency(rate: float, seconds: float) -> dict[str, Any]:
    """Webhook-to-stream latency at a fixed rate through the real receiver, worker and sandbox."""
    count = int(rate * seconds)
    run, port = Run(), free_port()
    async with spawn(sandbox_config(0.0), calls=count, startup_timeout_s=60) as wavix_url:
        env = run.env(wavix_url)
        base = f"http://127.0.0.1:{port}"
        calls = Sandbox(sandbox_config(0.0)).place(count)
        serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
        redis = redisurl.client(REDIS_URL)
        worker = subprocess.Popen([sys.executable, "-m", "wavix_events.cli", "worker"], env={**os.environ, **env},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with running(serve, env, f"{base}/healthz"):
                await asyncio.sleep(1.0)  # the worker's startup
                # Each call's clock starts as its webhook goes out (the sender calls `on_first_send` then), not
                # when sending began: the sender plans every delivery first, which once added ~26 ms to each.
                went_out: dict[str, float] = {}
                target = f"{base}/webhooks/wavix/{TOKEN}"
                results = await send_webhooks(calls, target, rate=rate, variants=[Variant.SPEC],
                                              on_first_send=lambda call_id: went_out.setdefault(call_id, time.time()))
                sent = {r.call_id: went_out[r.call_id] for r in results if r.status == 200}
                deadline = time.monotonic() + 30
                while await redis.xlen(run.stream) < len(sent) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
            entries = await redis.xrange(run.stream)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            await run.clean(redis)
            await redis.aclose()
    delays = sorted((int(i.decode().split("-")[0]) / 1000 - sent[f[b"call_id"].decode()]) * 1000
                    for i, f in entries if f[b"call_id"].decode() in sent)
    return {"rate": rate, "planned": count, "calls": len(sent), "events": len(delays),
            "p50_ms": round(statistics.median(delays), 1), "p99_ms": round(delays[int(len(delays) * 0.99) - 1], 1)}


def report(fast: dict[str, Any], near: dict[str, Any], slow: dict[str, Any], lat: dict[str, Any]) -> dict[str, Any]:
    noop, floor, plain, real, slow_real = fast["noop"], fast["floor"], fast["unobserved"], fast["real"], slow["real"]
    near_real = near["real"]
    growth = (real["rss_end_kib"] - real["rss_warm_kib"]) / real["rss_warm_kib"] * 100
    late = (real["rss_end_kib"] - real["rss_mid_kib"]) / real["rss_mid_kib"] * 100
    out = {
        "noop_jobs_per_s": noop["per_s"], "calls_per_s": real["per_s"],
        "ratio": round(real["per_s"] / noop["per_s"], 3),
        "floor_calls_per_s": floor["per_s"], "floor_ratio": round(real["per_s"] / floor["per_s"], 3),
        "unobserved_calls_per_s": plain["per_s"],
        "observe_cost_pct": round((plain["per_s"] / real["per_s"] - 1) * 100, 1),
        "rss_growth_late_pct": round(late, 1), "rss_mid_kib": real["rss_mid_kib"],
        "calls_per_s_at_100ms": slow_real["per_s"], "calls_per_s_at_20ms": near_real["per_s"],
        "cpu_ms_per_call_at_20ms": near_real["cpu_ms_per_call"],
        "e2e_p50_ms": lat["p50_ms"], "e2e_p99_ms": lat["p99_ms"],
        "e2e_rate": lat["rate"], "rss_warm_kib": real["rss_warm_kib"], "rss_end_kib": real["rss_end_kib"],
        "rss_growth_pct": round(growth, 1), "calls": real["jobs"],
        "failed": real["failed"] + slow_real["failed"] + near_real["failed"] + floor["failed"] + plain["failed"],
        "published": real["published"], "concurrency": int(os.environ.get("WORKER_CONCURRENCY", "64")),
        "cpu_ms_per_call": real["cpu_ms_per_call"], "cpu_ms_per_noop_job": noop["cpu_ms_per_call"],
        "cpu_ms_per_floor_call": floor["cpu_ms_per_call"], "cpu_ms_per_call_at_100ms": slow_real["cpu_ms_per_call"],
        "cpu_ratio": round(noop["cpu_ms_per_call"] / real["cpu_ms_per_call"], 3),
        "cpu_floor_ratio": round(floor["cpu_ms_per_call"] / real["cpu_ms_per_call"], 3),
    }
    print(
        f"worker (one process, {out['concurrency']} jobs at once, {out['calls']} calls, {noop['jobs']} no-op jobs):\n"
        f"  no-op job        {noop['per_s']:>8.0f} jobs/s\n"
        f"  floor job        {floor['per_s']:>8.0f} calls/s   (GET of the CDR + one script)\n"
        f"  real job, 0 ms   {real['per_s']:>8.0f} calls/s   ratio {out['ratio']:.3f} (target >= 0.5),"
        f" / floor {out['floor_ratio']:.3f} (target >= 0.85)\n"
        f"  without observe  {plain['per_s']:>8.0f} calls/s   (record + tracing cost {out['observe_cost_pct']:+.1f}%)\n"
        f"  real job, 20 ms  {near_real['per_s']:>8.0f} calls/s\n"
        f"  real job, 100 ms {slow_real['per_s']:>8.0f} calls/s   (target >= 500)\n"
        f"  CPU per call     {real['cpu_ms_per_call']:.3f} ms (no-op job {noop['cpu_ms_per_call']:.3f},"
        f" floor {floor['cpu_ms_per_call']:.3f}, at 100 ms {slow_real['cpu_ms_per_call']:.3f})\n"
        f"  webhook->event   p50 {lat['p50_ms']:.0f} ms  p99 {lat['p99_ms']:.0f} ms at {lat['rate']:g}/s"
        f" (target p99 < 100)\n"
        f"  worker RSS       {real['rss_warm_kib'] / 1024:.1f} MiB after warm-up"
        f" -> {real['rss_end_kib'] / 1024:.1f} MiB"
        f" ({out['rss_growth_pct']:+.1f}%, target < 10%); second half {out['rss_growth_late_pct']:+.1f}% (target < 2%)"
    )
    return out


async def main_async(args: argparse.Namespace) -> int:
    started = time.monotonic()
    fast = await throughput(args.calls, 0.0, noop_calls=args.noop_calls)
    near = await throughput(args.slow_calls, 0.02)
    slow = await throughput(args.slow_calls, 0.1)
    lat = await latency(args.rate, args.seconds)
    out = report(fast, near, slow, lat)
    print(f"  [{time.monotonic() - started:.0f}s]")
    record("worker", out)
    if lat["calls"] < lat["planned"] or lat["events"] < lat["calls"]:  # a latency over some calls only is no figure
        print(f"  latency: {lat['calls']} of {lat['planned']} webhooks accepted, {lat['events']} events: FAILED")
        return 1
    return 0 if out["failed"] == 0 and out["published"] == out["calls"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--noop-calls", type=int, default=4_000)
    parser.add_argument("--slow-calls", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
