"""The supervised worker starts a poll's jobs in one script call, with arq's checks, and finishes each in one
script call that leaves Redis as arq's own transaction does (workers/runtime/supervise.py).

A job starts only if it is due, still queued and not running anywhere (no in-progress mark), and it starts
holding a lease of LEASE_S; a busy worker starts the next job as soon as a slot frees, not a poll later.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
from arq import func
from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.worker import Worker
from redis.asyncio import Redis

from contract.jobs import PROCESS_CALL, job_deserializer, job_serializer
from contract.settings import Settings
from tests.conftest import REDIS_URL, TOKEN, forget
from workers.runtime.settings import create_worker
from workers.runtime.supervise import LEASE_S


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


FINISHES = {  # finish_job's arguments after the job id, as arq passes them
    "done, result kept 1 h": (True, b"result", 3600.0, False, None, None),
    "done, result kept for ever": (True, b"result", 3600.0, True, None, None),
    "done, no result": (True, None, None, False, None, None),
    "retry, score moved on": (False, None, None, False, 5000, None),
    "left running elsewhere": (False, None, None, False, None, 2.5),
}


@pytest.mark.parametrize("arguments", FINISHES.values(), ids=FINISHES.keys())
async def test_a_finish_script_leaves_redis_as_arqs_transaction_does(arguments: tuple[Any, ...]) -> None:
    """The same job state twice, finished once by arq's `finish_job` and once by the supervised worker's script:
    every key and queue entry ends the same (values, scores, and whether each has a lifetime)."""
    run = uuid.uuid4().hex
    queue, prefix = f"test:queue:{run}", f"test:{run}:"
    settings = Settings.from_env({"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue,
                                  "KEY_PREFIX": prefix, "WORKER_HEALTH_PORT": "0"})
    redis = Redis.from_url(REDIS_URL)
    async def job(ctx: dict[str, Any]) -> None:
        return None

    worker = create_worker(settings, functions=[func(job, name=PROCESS_CALL)], on_startup=None, on_shutdown=None,
                           handle_signals=False)
    worker._pool = ArqRedis(connection_pool=redis.connection_pool)
    keys = (in_progress_key_prefix, result_key_prefix, retry_key_prefix, job_key_prefix)

    async def state(job_id: str) -> list[Any]:
        found: list[Any] = [await redis.zscore(queue, job_id), await redis.zscore(abort_jobs_ss, job_id)]
        for key in keys:
            left_ms = await redis.pttl(key + job_id)  # -2: no key, -1: no lifetime; else whole seconds, rounded up
            found += [await redis.get(key + job_id), left_ms if left_ms < 0 else -(-left_ms // 1000)]
        return found

    try:
        for job_id in (ours := f"{prefix}ours", theirs := f"{prefix}theirs"):
            await redis.set(in_progress_key_prefix + job_id, b"1", px=10_000)
            await redis.set(retry_key_prefix + job_id, b"1", ex=88_400)
            await redis.set(job_key_prefix + job_id, b"job", px=3_600_000)
            await redis.zadd(queue, {job_id: 1_000})
            await redis.zadd(abort_jobs_ss, {job_id: 1})
        await Worker.finish_job(worker, theirs, *arguments)
        await worker.finish_job(ours, *arguments)
        assert await state(ours) == await state(theirs)
        assert worker._finish is not None  # the script ran, not arq's code
    finally:
        await worker.close()
        await redis.zrem(abort_jobs_ss, f"{prefix}ours", f"{prefix}theirs")
        await redis.aclose()
        forget([prefix, queue], [queue])


async def test_the_jobs_scripts_and_the_workers_own_share_one_batching_client() -> None:
    """One batching client a worker process: the jobs' resources use the supervised worker's (its start and
    finish scripts), and the worker closes it after the jobs' shutdown, which leaves it open."""
    run = uuid.uuid4().hex
    settings = Settings.from_env({"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": f"test:queue:{run}",
                                  "KEY_PREFIX": f"test:{run}:", "WORKER_HEALTH_PORT": "0", "WAVIX_API_KEY": "unused",
                                  "RECONCILE_INTERVAL": "0"})
    worker = create_worker(settings, handle_signals=False, poll_delay=0.05)
    running = asyncio.create_task(worker.main())
    try:
        for _ in range(100):
            if "resources" in worker.ctx:
                break
            await asyncio.sleep(0.05)
        batch = worker.ctx["resources"].batch
        assert batch is worker.ctx["batch"]
        await batch.call("PING")
        assert batch._conn is not None
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        on_shutdown = worker.on_shutdown
        assert on_shutdown is not None
        await on_shutdown(worker.ctx)
        assert batch._conn is not None, "the jobs' shutdown closed the worker's client"
        worker.on_shutdown = None  # ran above
        await worker.close()
        assert batch._conn is None, "the worker closed its client"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        forget([settings.key_prefix], [settings.queue_name])
