"""Ingest benchmark: the webhook endpoint against a decode-only baseline, same process, same load.

One receiver process serves both routes (bench/ingest_app.py). wrk, on loopback, sends the same kind
of body to each in alternating rounds (baseline, webhook, baseline, webhook, ...), every request a new
call id so the webhook does real work each time. The figure is the ratio of the medians of the rounds'
throughputs: what our auth + atomic dedup/enqueue costs on top of serving a request at all.

    python -m bench.ingest [--server granian|uvicorn] [--seconds 8] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
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

from redis.asyncio import Redis

from bench.results import record
from tests.helpers.servers import free_port, running

TOKEN = "bench-token-" + "b" * 24
HERE = Path(__file__).resolve().parent


def wrk(url: str, seconds: float, connections: int, prefix: str) -> dict[str, float]:
    """Runs wrk once and returns requests/s and latency percentiles (ms)."""
    script = str(HERE / "wrk_post.lua")
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", script, url]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, "BENCH_PREFIX": prefix}
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {p: _ms(re.search(rf"^\s+{p}%\s+([\d.]+\w+)", out, re.M).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
    non_2xx = int(errors.group(1)) if errors else 0
    return {"rps": rps, "p50_ms": latency["50"], "p99_ms": latency["99"], "non_2xx": non_2xx}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def _clean(redis_url: str, queue: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
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


def measure(server: str, seconds: float, rounds: int, connections: int) -> dict[str, Any]:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    queue, prefix, port = f"bench:ingest:{uuid.uuid4().hex}", f"b{uuid.uuid4().hex[:8]}", free_port()
    env = {
        "REDIS_URL": redis_url, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue, "LOG_LEVEL": "WARNING",
        "WEBHOOK_DEDUP_TTL": "900", "JOB_EXPIRY": "900",
    }
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--server", server, "--app", "bench.ingest_app:app"]
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "webhook": []}
    try:
        with running(args, env, f"{base}/healthz"):
            for name, path in (("baseline", "/bench/decode/"), ("webhook", "/webhooks/wavix/")):
                wrk(base + path + TOKEN, 2, connections, f"{prefix}w{name}")  # warm-up
            for r in range(rounds):
                for name, path in (("baseline", "/bench/decode/"), ("webhook", "/webhooks/wavix/")):
                    runs[name].append(wrk(base + path + TOKEN, seconds, connections, f"{prefix}{r}{name}"))
    finally:
        asyncio.run(_clean(redis_url, queue, prefix))
    return summarize(server, runs, seconds, connections)


def summarize(server: str, runs: dict[str, list[dict[str, float]]], seconds: float, connections: int) -> dict[str, Any]:
    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[name]), 3)

    webhook, baseline = median("webhook", "rps"), median("baseline", "rps")
    failures = sum(r["non_2xx"] for rs in runs.values() for r in rs)
    return {
        "server": server, "seconds_per_round": seconds, "rounds": len(runs["webhook"]), "connections": connections,
        "webhook_rps": webhook, "baseline_rps": baseline, "ratio": round(webhook / baseline, 3),
        "p50_ms": median("webhook", "p50_ms"), "p99_ms": median("webhook", "p99_ms"),
        "baseline_p50_ms": median("baseline", "p50_ms"), "baseline_p99_ms": median("baseline", "p99_ms"),
        "non_2xx": failures, "rounds_rps": {k: [r["rps"] for r in v] for k, v in runs.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed: `make tools` installs it (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    started = time.monotonic()
    result = measure(args.server, args.seconds, args.rounds, args.connections)
    print(
        f"ingest ({result['server']}, {result['connections']} connections, {result['rounds']}x{args.seconds:g}s):\n"
        f"  webhook   {result['webhook_rps']:>9.0f} req/s  p50 {result['p50_ms']:.2f} ms"
        f"  p99 {result['p99_ms']:.2f} ms\n"
        f"  baseline  {result['baseline_rps']:>9.0f} req/s  p50 {result['baseline_p50_ms']:.2f} ms"
        f"  p99 {result['baseline_p99_ms']:.2f} ms\n"
        f"  ratio     {result['ratio']:.3f}  (target >= 0.8)   non-2xx answers: {result['non_2xx']}"
        f"   [{time.monotonic() - started:.0f}s]"
    )
    record("ingest" if args.server == "granian" else f"ingest_{args.server}", result)
    return 0 if result["non_2xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
