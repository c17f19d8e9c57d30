"""A worker's own resources (`workers.runtime.context.startup`) over a routing file, in the test's process: for tests
that drive one stage (`deliver_all`, the `deliver` step) without running a worker. Names are the run's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import Redis

from contract.jobs import job_deserializer, job_serializer
from contract.settings import Settings
from tests.conftest import REDIS_URL, forget
from workers.runtime import context


@asynccontextmanager
async def worker_resources(sinks: Path) -> AsyncIterator[tuple[dict[str, Any], Settings, Redis]]:
    """(the job context with its `resources`, the settings, a plain client), shut down and forgotten after."""
    run = uuid.uuid4().hex
    settings = Settings.from_env({
        "REDIS_URL": REDIS_URL, "KEY_PREFIX": f"test:{run}:", "QUEUE_NAME": f"test:queue:{run}",
        "DEAD_LETTER_STREAM": f"test:dead:{run}", "SINKS_CONFIG": str(sinks),
        "WORKER_HEALTH_PORT": "0", "RECONCILE_INTERVAL": "0", "WAVIX_API_KEY": "unused",
    })
    redis = Redis.from_url(REDIS_URL)
    arq = ArqRedis(connection_pool=redis.connection_pool, job_serializer=job_serializer,
                   job_deserializer=job_deserializer)
    ctx: dict[str, Any] = {"settings": settings, "redis": arq}
    await context.startup(ctx)
    try:
        yield ctx, settings, redis
    finally:
        await context.shutdown(ctx)
        await redis.aclose()
        forget([settings.key_prefix], [settings.queue_name, settings.dead_letter_stream])
