"""The supervised worker starts a poll's jobs in one script call, with arq's checks (workers/supervise.py).

A job starts only if it is due, still queued and not running anywhere (no in-progress mark), and it starts
holding a lease of LEASE_S; a busy worker starts the next job as soon as a slot frees, not a poll later.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from arq import func
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from contract.jobs import PROCESS_CALL, job_deserializer, job_serializer
from contract.settings import Settings
from tests.conftest import REDIS_URL, TOKEN, forget
from workers.settings import create_worker
from workers.supervise import LEASE_S


async def test_a_poll_starts_due_jobs_that_run_nowhere_else_each_with_its_lease() -> None:
    run = uuid.uuid4().hex
    queue, prefix = f"test:queue:{run}", f"test:{run}:"
    settings = Settings.from_env({"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue,
                                  "KEY_PREFIX": prefix, "WORKER_HEALTH_PORT": "0", "WORKER_CONCURRENCY": "2"})
    gate, ran = asyncio.Event(), []

    async def job(ctx: dict[str, Any], arg: Any) -> str:
        ran.append(arg)
        await gate.wait()
        return "ok"

    redis = Redis.from_url(REDIS_URL)
    pool = ArqRedis(connection_pool=redis.connection_pool, job_serializer=job_serializer,
                    job_deserializer=job_deserializer)
    ids = {name: f"{prefix}{name}" for name in ("due", "later", "elsewhere", "second", "third")}
    worker = create_worker(settings, functions=[func(job, name=PROCESS_CALL)], on_startup=None, on_shutdown=None,
                           handle_signals=False, poll_delay=5.0)
    running: asyncio.Task[None] | None = None
    try:
        await redis.set(in_progress_key_prefix + ids["elsewhere"], b"1", px=60_000)  # another worker has it
        await pool.enqueue_job(PROCESS_CALL, "later", _job_id=ids["later"], _queue_name=queue, _defer_by=60)
        for name in ("elsewhere", "due", "second", "third"):  # queued in this order, all due
            await pool.enqueue_job(PROCESS_CALL, name, _job_id=ids[name], _queue_name=queue)
        running = asyncio.create_task(worker.main())
        for _ in range(100):
            if len(ran) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert sorted(ran) == ["due", "second"]  # two slots; "elsewhere" runs on another worker, "later" is not due
        for name in ("due", "second"):
            assert 0 < await redis.pttl(in_progress_key_prefix + ids[name]) <= LEASE_S * 1000
        assert await redis.pttl(in_progress_key_prefix + ids["elsewhere"]) > LEASE_S * 1000  # untouched

        # The first poll read "third" too: it starts as soon as a slot frees, not at the next poll (5 s away).
        gate.set()
        for _ in range(50):
            if "third" in ran:
                break
            await asyncio.sleep(0.02)
        assert sorted(ran[:2]) == ["due", "second"] and ran[2:] == ["third"]
    finally:
        gate.set()
        if running is not None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await worker.close()
        await redis.aclose()
        forget([prefix, queue], [queue])
