"""`make bench`: the receiver, worker and sink benchmarks in one go, then one table.

Each benchmark compares our code with a baseline measured in the same run (see docs/benchmarks.md)
and writes its section of bench/results.json; this prints them side by side. A figure that was not
measured in this run (a tool missing, a benchmark that failed) fails the run loudly, never a "-".
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench import accounts, ack, clients, ingest, reconcile, redis_cost, sinks, worker
from bench.results import RESULTS

ROWS = (
    ("ingest", "webhook_rps", "webhooks accepted per second (one uvicorn process)", None),
    ("ingest", "baseline_rps", "decode-only requests per second, same process", None),
    ("ingest", "ratio", "webhook / baseline", ">= 0.8"),
    ("ingest", "p99_ms", "webhook p99 latency under that load, ms", None),
    ("ingest", "cpu_us_per_webhook", "receiver CPU per webhook, µs", None),
    ("ingest", "cpu_us_per_baseline", "receiver CPU per decode-only request, µs", None),
    ("ingest", "cpu_ratio", "decode-only CPU / webhook CPU", None),
    ("ingest", "rss_kib", "receiver memory (RSS) after the rounds, KiB", None),
    ("ingest", "granian_webhooks_per_s", "webhooks per second on Granian instead, same run", None),
    ("ingest", "server_cost_pct", "uvicorn's webhooks/s below Granian's, % (framing)", None),
    ("ack", "ack0_rps", "webhooks per second, ACK_REPLICAS=0 (primary + 1 replica)", None),
    ("ack", "ack1_rps", "webhooks per second, ACK_REPLICAS=1 (the 200 waits for the replica)", None),
    ("ack", "ratio", "ACK_REPLICAS=1 / ACK_REPLICAS=0", None),
    ("ack", "ack1_p99_ms", "webhook p99 latency with ACK_REPLICAS=1, ms", None),
    ("worker", "noop_jobs_per_s", "arq no-op jobs per second (one worker process)", None),
    ("worker", "calls_per_s", "real calls per second, sandbox at 0 ms", None),
    ("worker", "ratio", "real / no-op", ">= 0.5"),
    ("worker", "floor_calls_per_s", "floor job (the GET + one script) per second", None),
    ("worker", "floor_ratio", "real / floor", ">= 0.85"),
    ("worker", "observe_cost_pct", "real job without / with workers.operate.observe, % faster", None),
    ("worker", "calls_per_s_at_20ms", "real calls per second, sandbox at 20 ms", None),
    ("worker", "calls_per_s_at_100ms", "real calls per second, sandbox at 100 ms", ">= 500"),
    ("worker", "cpu_ms_per_call", "worker CPU per call, ms (sandbox at 0 ms)", None),
    ("worker", "cpu_ms_per_call_at_20ms", "worker CPU per call, ms (sandbox at 20 ms)", None),
    ("worker", "cpu_ms_per_noop_job", "worker CPU per arq no-op job, ms", None),
    ("worker", "cpu_ratio", "no-op job CPU / real call CPU", None),
    ("worker", "e2e_p50_ms", "webhook -> stream entry p50 at 100 calls/s, ms", None),
    ("worker", "e2e_p99_ms", "webhook -> stream entry p99 at 100 calls/s, ms", "< 100"),
    ("worker", "rss_growth_pct", "worker memory growth over the calls, %", "< 10"),
    ("worker", "rss_growth_late_pct", "worker memory growth, second half of the calls, %", "< 2"),
    ("worker", "rss_end_kib", "worker memory (RSS) after the calls, KiB", None),
    ("accounts", "lookup_ns_100", "token -> account with 100 accounts, ns a webhook", None),
    ("accounts", "lookup_ratio", "that lookup, 100 accounts / 1 account", "<= 1.2"),
    ("accounts", "worker_us_per_call_100", "the worker's account steps a call, 100 accounts, µs", None),
    ("accounts", "worker_cost_pct", "those steps, % of a call's worker time (worker.calls_per_s)", "< 3"),
    ("reconcile", "pass_s_10k_seen", "reconcile pass over 10,000 calls all seen before, s", "<= 10"),
    ("reconcile", "api_requests_per_pass_10k_per_day", "list requests per pass, 10,000 calls a day", None),
    ("redis_cost", "commands_per_call", "Redis commands per call (post-call only, scripts' own counted)", None),
    ("redis_cost", "round_trips_per_call_receiver", "Redis round trips per call, receiver (batches: less)", None),
    ("redis_cost", "round_trips_per_call_worker", "Redis round trips per call, worker", None),
    ("redis_cost", "cpu_us_per_call", "Redis CPU per call, µs (private redis-server)", None),
    ("redis_cost", "bytes_per_call", "Redis memory per call kept after it, bytes", None),
    ("redis_cost", "calls_per_s_one_core", "calls/s one Redis main thread carries (estimate)", None),
    ("postgres", "calls_per_s", "calls per second into PostgreSQL (our sink, 64 at once)", None),
    ("postgres", "ratio", "PostgreSQL sink / asyncpg in a plain loop", ">= 1.5"),
)


def missing(results: dict[str, dict[str, object]]) -> list[str]:
    """The table's figures this run did not measure."""
    absent = [f"{section}.{key}" for section, key, _, _ in ROWS if key not in results.get(section, {})]
    return absent + [f"clients.{kind}" for kind in ("http", "redis") if not results.get("clients", {}).get(kind)]


def table(results: dict[str, dict[str, object]]) -> str:
    lines = [f"{'measure':<56} {'value':>10}  target", "-" * 78]
    for section, key, label, target in ROWS:
        value = results.get(section, {}).get(key, "NOT MEASURED")
        lines.append(f"{label:<56} {value!s:>10}  {target or ''}")
    for kind, unit in (("http", "cpu_ms"), ("redis", "cpu_us")):
        measured: dict[str, dict[str, object]] = dict(results.get("clients", {})).get(kind, {})  # type: ignore[assignment]
        for name, numbers in measured.items():
            lines.append(f"{'client ' + kind + ' ' + name + ', CPU ' + unit[4:]:<56} {numbers[unit]!s:>10}")
    for name, numbers in sorted(dict(results.get("sinks", {})).items()):
        if isinstance(numbers, dict) and "ratio" in numbers:
            lines.append(f"{'sink ' + name + ': ours / the client library in a loop':<56} {numbers['ratio']!s:>10}")
    return "\n".join(lines)


def main() -> int:
    started = time.monotonic()
    RESULTS.unlink(missing_ok=True)  # only this run's figures count
    status = max(clients.main([]), ingest.main([]), ack.main([]), worker.main([]), accounts.main([]),
                 reconcile.main([]), redis_cost.main([]))
    asyncio.run(sinks.main(1500, 2))
    results = json.loads(RESULTS.read_text())
    print(f"\nmake bench: {results.get('machine')} at {results.get('measured_at')}"
          f" ({time.monotonic() - started:.0f} s)\n{table(results)}\nwritten to {RESULTS}")
    if absent := missing(results):
        print(f"NOT MEASURED in this run: {', '.join(absent)}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
