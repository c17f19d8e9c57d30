"""`python -m bench.reconcile`: what a reconcile pass costs when nothing was missed, the usual case.

An account with 10,000 calls in one UTC day (the sandbox, on loopback), all already seen: the pass lists the
whole day (`per_page` 1000, both types) and offers every call to ENQUEUE_MANY, one round trip per page, which
queues nothing. Target: the pass within 10 s. Written to bench/results.json under `reconcile`:

    pass_s_10k_seen                        seconds of that pass (lookback widened to 30 h, so all 10,000
                                           go through the seen check)
    api_requests_per_pass_10k_per_day      list requests of a pass with the default 2-hour lookback
    api_requests_per_pass_across_midnight  the same at 00:30 UTC: yesterday's 10,000 and today's few
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis

from bench.results import record
from contract import logs
from contract.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import serve
from sandbox.state import Sandbox
from workers.fetch.listed import ListedIntake
from workers.fetch.reconcile import PassReport, reconcile_pass
from workers.fetch.wavix import WavixClient, create_http_client
from workers.retry import RetryPolicy

CALLS = 10_000
TARGET_S = 10.0
DAY = "2026-03-01"


async def _pass(wavix: WavixClient, intake: ListedIntake, now: datetime, lookback: float) -> PassReport:
    return await reconcile_pass(wavix, intake, now=now.timestamp(), lookback=lookback, policy=RetryPolicy(),
                                settle_s=0.0)


async def measure(redis_url: str = "redis://127.0.0.1:6379/0") -> dict[str, float | int]:
    """Runs the three passes against a fresh sandbox and a unique key prefix; deletes its keys after."""
    sandbox = Sandbox(SandboxConfig(seed=7, start=f"{DAY}T00:00:00Z", spacing_s=86_400 / CALLS))
    sandbox.place(CALLS)
    run = uuid.uuid4().hex
    async with serve(sandbox) as url:
        settings = Settings.from_env({"REDIS_URL": redis_url, "WAVIX_API_URL": url, "WAVIX_API_KEY": "sandbox-api-key",
                                      "KEY_PREFIX": f"bench:{run}:", "QUEUE_NAME": f"bench:queue:{run}",
                                      "WAVIX_CDR_PATH": "/v1/cdrs/{call_id}", "LOG_LEVEL": "WARNING"})
        http, redis = create_http_client(settings, concurrency=2), Redis.from_url(redis_url)
        try:
            wavix, intake = WavixClient.from_settings(http, settings), ListedIntake.from_settings(redis, settings)
            after, evening = datetime(2026, 3, 2, 2, tzinfo=UTC), datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
            first = await _pass(wavix, intake, after, 30 * 3600)  # marks all 10,000 seen (and queues them)
            started = time.perf_counter()
            seen = await _pass(wavix, intake, after, 30 * 3600)
            seconds = time.perf_counter() - started
            assert first.queued == seen.listed == seen.in_window == CALLS and seen.queued == 0, (first, seen)
            daily = await _pass(wavix, intake, evening, settings.reconcile_lookback)
            midnight = await _pass(wavix, intake, datetime(2026, 3, 2, 0, 30, tzinfo=UTC), settings.reconcile_lookback)
        finally:
            await _forget(redis, settings)
            await redis.aclose()
            await http.aclose()
    return {"pass_s_10k_seen": round(seconds, 3), "target_s": TARGET_S, "calls_listed": seen.listed,
            "api_requests_per_pass_10k_per_day": daily.requests,
            "api_requests_per_pass_across_midnight": midnight.requests, "per_page": 1000}


async def _forget(redis: Redis, settings: Settings) -> None:
    for pattern in (f"{settings.key_prefix}*", f"arq:*{settings.key_prefix}*", settings.queue_name):
        keys = [k async for k in redis.scan_iter(match=pattern, count=10_000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i:i + 1000])


def main(argv: list[str]) -> int:
    """Measures, records the `reconcile` section, prints it; exit 1 when the pass misses its target."""
    logs.configure("ERROR")  # the first pass finds 10,000 "missed" webhooks: one warning each
    values = asyncio.run(measure(*argv[:1]))
    record("reconcile", values)
    print(f"reconcile: {values}")
    return 0 if float(values["pass_s_10k_seen"]) <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
