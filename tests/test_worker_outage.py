"""A worker process rides out a Redis outage: a real `redis-server` (AOF on) stopped under it and started again.

The worker (`wavix-events worker`, a real process) keeps running, says once that Redis is gone and once
that it is back, keeps `/healthz` answering while `/readyz` reports the outage, and every call ends with
exactly one completed event: jobs that were in flight when Redis went away finish or run again as soon
as it is back, not JOB_TIMEOUT (300 s here) later.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from chaos.redis import PrivateRedis, free_port
from contract.events import COMPLETED, decode_event
from contract.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import serve as serve_sandbox
from sandbox.state import Sandbox
from sandbox.webhooks import send_webhooks
from service.app import create_app
from tests.conftest import TOKEN

CALLS = 40


@pytest.fixture
def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    with PrivateRedis(tmp_path / "redis") as server:
        yield server


async def completed(redis: Redis, stream: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, fields in await redis.xrange(stream):
        event = decode_event(fields[b"event"])
        if event.type == COMPLETED:
            counts[event.subject] = counts.get(event.subject, 0) + 1
    return counts


async def wait_until(check, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return bool(await check())


def status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1.0).status_code
    except httpx.TransportError:
        return None


async def test_the_worker_rides_out_a_redis_restart_and_finishes_every_call(private_redis, tmp_path):
    """Redis stopped (gracefully, AOF kept) for ~3 s under a worker with jobs in flight: the process stays
    alive, logs one `worker.redis_lost` warning and one `worker.redis_back` line, /healthz answers 200 and
    /readyz 503 during the outage, and every call gets exactly one completed event soon after Redis is back."""
    sandbox = Sandbox(SandboxConfig(seed=53, transcript_share=0.0, faults=Faults(latency_s=0.7)))
    health = free_port()
    async with serve_sandbox(sandbox) as wavix_url:
        settings = Settings.from_env({
            "REDIS_URL": private_redis.url, "WEBHOOK_TOKENS": TOKEN, "WAVIX_API_URL": wavix_url,
            "WAVIX_API_KEY": sandbox.config.api_key, "WORKER_HEALTH_PORT": str(health), "WORKER_CONCURRENCY": "8",
            "JOB_TIMEOUT": "300", "TRANSCRIPT_POLL": "3600",
        })
        env = {**os.environ, "REDIS_URL": settings.redis_url, "WAVIX_API_URL": wavix_url,
               "WAVIX_API_KEY": settings.wavix_api_key, "WORKER_HEALTH_PORT": str(health),
               "WORKER_CONCURRENCY": "8", "JOB_TIMEOUT": "300", "TRANSCRIPT_POLL": "3600", "LOG_LEVEL": "INFO"}
        log_path = tmp_path / "worker.log"
        redis = Redis.from_url(settings.redis_url)
        with log_path.open("wb") as log:
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wavix_events.cli", "worker", env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )
        try:
            calls = sandbox.place(CALLS)
            async with AsyncTestClient(app=create_app(settings)) as receiver:
                results = await send_webhooks(calls, f"/webhooks/wavix/{TOKEN}", client=receiver, rate=200,
                                              on_first_send=sandbox.mark_sent)
            assert all(r.status == 200 for r in results)

            async def some_done() -> bool:
                return len(await completed(redis, settings.events_stream)) >= 4

            assert await wait_until(some_done, 30), log_path.read_text()[-3000:]
            private_redis.stop()  # jobs are in flight: eight at a time, 0.7 s each
            stopped = time.monotonic()
            readiness: list[int | None] = []  # within a lease renewal (1 s), even with every slot busy
            while time.monotonic() - stopped < 2.5 and 503 not in readiness:
                readiness.append(status(f"http://127.0.0.1:{health}/readyz"))
                await asyncio.sleep(0.1)
            during = (status(f"http://127.0.0.1:{health}/healthz"), readiness[-1])
            await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - stopped)))
            private_redis.start()
            await redis.aclose()
            redis = Redis.from_url(settings.redis_url)

            async def all_done() -> bool:
                return len(await completed(redis, settings.events_stream)) == CALLS

            finished = await wait_until(all_done, 60)  # far below JOB_TIMEOUT + 10 s (310 s)
            text = log_path.read_text()
            assert worker.returncode is None, text[text.find("Traceback"):][:6000]
            assert finished, text[-3000:]
            assert set((await completed(redis, settings.events_stream)).values()) == {1}
            assert during == (200, 503)
            assert text.count("worker.redis_lost") == 1, text[-3000:]
            assert text.count("worker.redis_back") == 1, text[-3000:]
            assert status(f"http://127.0.0.1:{health}/readyz") == 200
        finally:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
                await asyncio.wait_for(worker.wait(), 60)
            await redis.aclose()
