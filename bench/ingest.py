"""Ingest benchmark: the webhook endpoint against a decode-only baseline, same process, same load.

One receiver process serves both routes (bench/ingest_app.py). wrk, on loopback, sends the same kind
of body to each in alternating rounds (baseline, webhook, baseline, webhook, ...), every request a new
call id so the webhook does real work each time. The figure is the ratio of the medians of the rounds'
throughputs: what our auth + atomic dedup/enqueue costs on top of serving a request at all.

The server's CPU time (bench/proc.py) is read before and after each round, so each route also gets its CPU
per request (`cpu_us_per_webhook`, `cpu_us_per_baseline`, medians of the rounds) and `cpu_ratio`, their
ratio: the same question as `ratio`, answered by what the process spent rather than by what it served in
a wall-clock second, which is far steadier on a shared machine (wrk and Redis share its two cores). The
server's resident memory after the last round is `rss_kib`.

The server is `serve`'s default (uvicorn, chosen for its HTTP framing: service/serve.py). What that
choice costs is measured in the same run: a second receiver process on the other server (Granian),
same app and settings, gets a short webhook round right after each webhook round of the first (it idles
otherwise); `server_cost_pct` is how many fewer webhooks per second the measured server served than the
other, in percent of the other's (medians of the rounds; negative when it served more).

    python -m bench.ingest [--server uvicorn|granian] [--compare granian|uvicorn|none] [--seconds 6]
                           [--rounds 3] [--compare-seconds 2] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.proc import cpu_ms, rss_kib
from bench.results import record
from contract import redisurl
from service.serve import SERVERS
from tests.helpers.servers import free_port, running

TOKEN = "bench-token-" + "b" * 24
HERE = Path(__file__).resolve().parent


def wrk(url: str, seconds: float, connections: int, prefix: str, pid: int | None = None) -> dict[str, float]:
    """Runs wrk once and returns requests/s and latency percentiles (ms); with `pid`, the server's CPU per
    request over the round (µs)."""
    script = str(HERE / "wrk_post.lua")
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", script, url]
    cpu_before = cpu_ms(pid) if pid else 0.0
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, "BENCH_PREFIX": prefix}
    ).stdout
    cpu_spent = cpu_ms(pid) - cpu_before if pid else 0.0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {p: _ms(re.search(rf"^\s+{p}%\s+([\d.]+\w+)", out, re.M).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
    non_2xx = int(errors.group(1)) if errors else 0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": latency["50"], "p99_ms": latency["99"], "non_2xx": non_2xx,
            "cpu_us": round(cpu_spent * 1000 / max(requests, 1), 2)}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def _clean(redis_url: str, queue: str, prefix: str) -> None:
    redis = redisurl.client(redis_url)
    try:
        await redis.delete(queue)
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"*:{prefix}*", count=5000):  # seen marks, jobs, webhook lists
            batch.append(key)
            if len(batch) >= 5000:
                await redis.delete(*batch)
                batch.clear()
        if batch:
            await redis.delete(*batch)
    finally:
        await redis.aclose()


def measure(
    server: str, seconds: float, rounds: int, connections: int, compare: str | None = None, compare_seconds: float = 2
) -> dict[str, Any]:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    queue, prefix = f"bench:ingest:{uuid.uuid4().hex}", f"b{uuid.uuid4().hex[:8]}"
    env = {
        "REDIS_URL": redis_url, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue, "LOG_LEVEL": "WARNING",
        "WEBHOOK_DEDUP_TTL": "900", "JOB_EXPIRY": "900",
    }
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "webhook": []}
    other: list[dict[str, float]] = []
    try:
        with contextlib.ExitStack() as stack:
            base, pid = _serve(stack, server, env)
            other_base = _serve(stack, compare, env)[0] if compare else ""
            for name, path in (("baseline", "/bench/decode/"), ("webhook", "/webhooks/wavix/")):
                wrk(base + path + TOKEN, 2, connections, f"{prefix}w{name}")  # warm-up
            if compare:
                wrk(other_base + "/webhooks/wavix/" + TOKEN, 2, connections, f"{prefix}wother")
            for r in range(rounds):
                for name, path in (("baseline", "/bench/decode/"), ("webhook", "/webhooks/wavix/")):
                    runs[name].append(wrk(base + path + TOKEN, seconds, connections, f"{prefix}{r}{name}", pid))
                if compare:
                    other.append(wrk(other_base + "/webhooks/wavix/" + TOKEN, compare_seconds, connections,
                                     f"{prefix}{r}other"))
            rss = rss_kib(pid)  # after the last round: what one receiver holds under this load
    finally:
        asyncio.run(_clean(redis_url, queue, prefix))
    result = summarize(server, runs, seconds, connections) | {"rss_kib": rss}
    if compare:
        result |= compared(compare, other, compare_seconds, result["webhook_rps"])
    return result


def _serve(stack: contextlib.ExitStack, server: str, env: dict[str, str]) -> tuple[str, int]:
    """Starts a receiver on `server` serving bench/ingest_app.py; its base URL and pid. Stopped with the stack."""
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--server", server, "--app", "bench.ingest_app:app"]
    base = f"http://127.0.0.1:{port}"
    process = stack.enter_context(running(args, env, f"{base}/healthz"))
    return base, process.pid


def compared(other: str, runs: list[dict[str, float]], seconds: float, webhook_rps: float) -> dict[str, Any]:
    """The other server's webhook rounds, and how far below them the measured server's median is, in %."""
    rps = round(statistics.median(r["rps"] for r in runs), 3)
    return {
        f"{other}_webhooks_per_s": rps, f"{other}_seconds_per_round": seconds,
        f"{other}_p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
        f"{other}_rounds_rps": [r["rps"] for r in runs], f"{other}_non_2xx": sum(r["non_2xx"] for r in runs),
        "server_cost_pct": round((1 - webhook_rps / rps) * 100, 1),
    }


def summarize(server: str, runs: dict[str, list[dict[str, float]]], seconds: float, connections: int) -> dict[str, Any]:
    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[name]), 3)

    webhook, baseline = median("webhook", "rps"), median("baseline", "rps")
    cpu_webhook, cpu_baseline = median("webhook", "cpu_us"), median("baseline", "cpu_us")
    failures = sum(r["non_2xx"] for rs in runs.values() for r in rs)
    return {
        "server": server, "seconds_per_round": seconds, "rounds": len(runs["webhook"]), "connections": connections,
        "webhook_rps": webhook, "baseline_rps": baseline, "ratio": round(webhook / baseline, 3),
        "cpu_us_per_webhook": cpu_webhook, "cpu_us_per_baseline": cpu_baseline,
        "cpu_ratio": round(cpu_baseline / cpu_webhook, 3) if cpu_webhook else None,
        "p50_ms": median("webhook", "p50_ms"), "p99_ms": median("webhook", "p99_ms"),
        "baseline_p50_ms": median("baseline", "p50_ms"), "baseline_p99_ms": median("baseline", "p99_ms"),
        "non_2xx": failures, "rounds_rps": {k: [r["rps"] for r in v] for k, v in runs.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=SERVERS, default=SERVERS[0])
    parser.add_argument("--compare", choices=[*SERVERS, "none"], help="the other server (default: the other one)")
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare-seconds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    compare = args.compare or next(s for s in SERVERS if s != args.server)
    compare = None if compare in ("none", args.server) else compare
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed: `make tools` installs it (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    started = time.monotonic()
    result = measure(args.server, args.seconds, args.rounds, args.connections, compare, args.compare_seconds)
    print(
        f"ingest ({result['server']}, {result['connections']} connections, {result['rounds']}x{args.seconds:g}s):\n"
        f"  webhook   {result['webhook_rps']:>9.0f} req/s  p50 {result['p50_ms']:.2f} ms"
        f"  p99 {result['p99_ms']:.2f} ms\n"
        f"  baseline  {result['baseline_rps']:>9.0f} req/s  p50 {result['baseline_p50_ms']:.2f} ms"
        f"  p99 {result['baseline_p99_ms']:.2f} ms\n"
        f"  ratio     {result['ratio']:.3f}  (target >= 0.8)   non-2xx answers: {result['non_2xx']}\n"
        f"  CPU       {result['cpu_us_per_webhook']:.1f} µs a webhook, {result['cpu_us_per_baseline']:.1f} µs a"
        f" decode-only request: ratio {result['cpu_ratio']}"
    )
    failures = result["non_2xx"]
    if compare:
        failures += result[f"{compare}_non_2xx"]
        cost = result["server_cost_pct"]
        print(
            f"  webhook on {compare} {result[f'{compare}_webhooks_per_s']:>9.0f} req/s"
            f" ({result['rounds']}x{args.compare_seconds:g}s, after each webhook round)"
            f"  p99 {result[f'{compare}_p99_ms']:.2f} ms   non-2xx answers: {result[f'{compare}_non_2xx']}\n"
            f"  {result['server']} serves {abs(cost):.1f}% {'fewer' if cost >= 0 else 'more'} webhooks/s than {compare}"
            f"  (server_cost_pct {cost:+.1f})"
        )
    print(f"  [{time.monotonic() - started:.0f}s]")
    record("ingest" if args.server == SERVERS[0] else f"ingest_{args.server}", result)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
