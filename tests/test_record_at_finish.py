"""A job's notes for the per-call record, and its delivery tries for the console, go out with the job's end: one
script call for all (workers/runtime/supervise.py `_FINISH_RECORDED`), and a record Redis refuses never keeps
the job from finishing."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from arq import func
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from redis.asyncio import Redis

from contract.jobs import PROCESS_CALL, job_deserializer, job_serializer
from contract.record import decode_entry, record_key
from contract.settings import Settings
from tests.conftest import REDIS_URL, TOKEN, forget
from workers.deliver import attempts
from workers.operate import observe, record
from workers.runtime.settings import create_worker


async def _run_one_job(prefix: str, queue: str, call_id: str, watcher: Redis) -> list[str]:
    """One observed job for `call_id` through the supervised worker (burst); the commands naming the call that
    clients sent meanwhile, as MONITOR shows them."""
    settings = Settings.from_env({"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue,
                                  "KEY_PREFIX": prefix, "WORKER_HEALTH_PORT": "0"})

    async def job(ctx: dict[str, Any], arg: Any) -> str:
        record.note("fetch", what="cdr", status="200")
        notes = record.current()
        assert notes is not None
        tried = attempts.Attempt(at_ms=record.now_ms(), destination="crm", event_id=f"event-{call_id}")
        assert notes.hold(attempts.parts(prefix, 60, tried))  # as workers/deliver/delivery.py does for a try
        return "published"

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["resources"] = SimpleNamespace(recorder=record.Writer(ctx["batch"], prefix, 60))

    redis = Redis.from_url(REDIS_URL)
    pool = ArqRedis(connection_pool=redis.connection_pool, job_serializer=job_serializer,
                    job_deserializer=job_deserializer)
    await pool.enqueue_job(PROCESS_CALL, {"call_id": call_id}, _job_id=f"{prefix}{call_id}", _queue_name=queue)
    worker = create_worker(settings, functions=[func(observe.observed(job), name=PROCESS_CALL)],
                           on_startup=startup, on_shutdown=None, handle_signals=False, burst=True, poll_delay=0)
    seen: list[str] = []
    marker = f"{prefix}end"
    try:
        async with watcher.monitor() as monitor:
            async def read() -> None:
                async for line in monitor.listen():
                    if marker in line["command"]:
                        return
                    if call_id in line["command"] and line.get("client_type") != "lua":
                        seen.append(line["command"])
            reader = asyncio.create_task(read())
            await asyncio.sleep(0.05)
            await worker.main()
            await watcher.echo(marker)
            await asyncio.wait_for(reader, 10)
    finally:
        await worker.close()
        await redis.aclose()
    return seen


async def test_a_jobs_record_and_its_end_are_one_script_call() -> None:
    """The job's notes are in the call's record once it has finished, and its delivery try in the console's list,
    with no command of their own: the job's end (result kept, queue entry and marks gone), the record and the try
    went in the finish script."""
    run = uuid.uuid4().hex
    prefix, queue, call_id = f"test:{run}:", f"test:queue:{run}", f"call-{run}"
    redis, watcher = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    try:
        sent = await _run_one_job(prefix, queue, call_id, watcher)
        steps = [decode_entry(raw).step for raw in await redis.lrange(record_key(prefix, call_id), 0, -1)]
        assert steps == ["fetch", "job"]
        job_id = f"{prefix}{call_id}"
        writes = [c for c in sent if record_key(prefix, call_id) in c]
        assert len(writes) == 1 and writes[0].startswith("EVALSHA"), sent
        assert in_progress_key_prefix + job_id in writes[0], "the record went with the job's end"
        assert attempts.attempts_key(prefix, f"event-{call_id}") in writes[0], "and the try with them"
        tries = [attempts.decode_attempt(raw) for raw in
                 await redis.lrange(attempts.attempts_key(prefix, f"event-{call_id}"), 0, -1)]
        assert [(t.destination, t.ok) for t in tries] == [("crm", True)]
        await _ended(redis, queue, job_id)
    finally:
        await _clean(redis, watcher, prefix, queue, call_id)


async def test_a_record_redis_refuses_still_lets_the_job_finish() -> None:
    """The call's record key holds something else (WRONGTYPE for RPUSH): the record is dropped, and the job ends
    as ever: its result kept, its queue entry and marks gone, so it never runs again."""
    run = uuid.uuid4().hex
    prefix, queue, call_id = f"test:{run}:", f"test:queue:{run}", f"call-{run}"
    redis, watcher = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    try:
        await redis.set(record_key(prefix, call_id), "not a list", ex=60)
        await _run_one_job(prefix, queue, call_id, watcher)
        job_id = f"{prefix}{call_id}"
        assert await redis.get(record_key(prefix, call_id)) == b"not a list"
        await _ended(redis, queue, job_id)
    finally:
        await _clean(redis, watcher, prefix, queue, call_id)


async def _ended(redis: Redis, queue: str, job_id: str) -> None:
    """The job ended as arq ends one: its result kept, its record and in-progress mark gone, its queue empty."""
    assert await redis.exists(result_key_prefix + job_id) == 1
    assert await redis.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id) == 0
    assert await redis.zcard(queue) == 0


async def _clean(redis: Redis, watcher: Redis, prefix: str, queue: str, call_id: str) -> None:
    await redis.delete(result_key_prefix + f"{prefix}{call_id}")
    await redis.aclose()
    await watcher.aclose()
    forget([prefix], [queue])
