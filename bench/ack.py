"""What ACK_REPLICAS costs the receiver: webhooks/s and latency with the 200 waiting for a replica, or not.

A private primary and one replica (chaos/redis.py, on free loopback ports, so nothing else shares them), two
receivers on the same primary, one with ACK_REPLICAS=0 and one with ACK_REPLICAS=1, and wrk against each in
alternating rounds (the same load, the same moment of the machine), as bench/ingest.py measures the
receiver. `ratio` is ack-1 webhooks/s over ack-0 webhooks/s: what the durability of a 200 costs here. With
one WAIT per batch (contract/redisbatch.py), a batch of webhooks waits one replica round trip, not one each.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.ingest import TOKEN, _serve, wrk
from bench.results import record
from chaos.redis import PrivateRedis

MODES = ("ack0", "ack1")


def measure(seconds: float, rounds: int, connections: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    prefix = f"a{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        primary = stack.enter_context(PrivateRedis(Path(directory) / "primary"))
        stack.enter_context(PrivateRedis(Path(directory) / "replica",
                                         extra=["--replicaof", "127.0.0.1", str(primary.port)]))
        bases = {}
        for mode in MODES:
            env = {"REDIS_URL": primary.url, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": f"bench:ack:{mode}",
                   "LOG_LEVEL": "WARNING", "WEBHOOK_DEDUP_TTL": "900", "JOB_EXPIRY": "900",
                   "ACK_REPLICAS": mode[-1], "ACK_TIMEOUT_MS": "1000"}
            bases[mode] = _serve(stack, "uvicorn", env)[0] + "/webhooks/wavix/" + TOKEN
            wrk(bases[mode], 2, connections, f"{prefix}w{mode}")  # warm-up (and the replica in sync)
        for r in range(rounds):
            for mode in MODES:
                runs[mode].append(wrk(bases[mode], seconds, connections, f"{prefix}{r}{mode}"))

    def median(mode: str, key: str) -> float:
        return round(statistics.median(run[key] for run in runs[mode]), 3)

    result: dict[str, Any] = {"seconds_per_round": seconds, "rounds": rounds, "connections": connections}
    for mode in MODES:
        result |= {f"{mode}_rps": median(mode, "rps"), f"{mode}_p50_ms": median(mode, "p50_ms"),
                   f"{mode}_p99_ms": median(mode, "p99_ms")}
    result["ratio"] = round(result["ack1_rps"] / result["ack0_rps"], 3)
    result["non_2xx"] = sum(run["non_2xx"] for rs in runs.values() for run in rs)
    result["rounds_rps"] = {mode: [run["rps"] for run in rs] for mode, rs in runs.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed: `make tools` installs it (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    started = time.monotonic()
    result = measure(args.seconds, args.rounds, args.connections)
    print(f"ack ({args.connections} connections, {args.rounds}x{args.seconds}s alternating, primary + 1 replica):\n"
          f"  ACK_REPLICAS=0  {result['ack0_rps']:>9.0f} req/s  p50 {result['ack0_p50_ms']:.2f} ms"
          f"  p99 {result['ack0_p99_ms']:.2f} ms\n"
          f"  ACK_REPLICAS=1  {result['ack1_rps']:>9.0f} req/s  p50 {result['ack1_p50_ms']:.2f} ms"
          f"  p99 {result['ack1_p99_ms']:.2f} ms\n"
          f"  ratio {result['ratio']:.3f}   non-2xx answers: {result['non_2xx']}   [{time.monotonic() - started:.0f}s]")
    record("ack", result)
    return 0 if result["non_2xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
