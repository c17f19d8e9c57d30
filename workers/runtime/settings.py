"""The arq worker's settings, built from our `Settings` (never from module-level globals).

The worker is arq's, supervised (workers/runtime/supervise.py): it rides out Redis outages. Redis unreachable at
start fails at once (no connection retries: the CLI says so in one line and exits 1).
"""

from __future__ import annotations

from typing import Any

from arq import func

from contract.jobs import DELIVER, FETCH_TRANSCRIPT, PROCESS_CALL, job_deserializer, job_serializer
from contract.settings import Settings
from workers import process
from workers.operate import observe
from workers.runtime import context, health
from workers.runtime.supervise import SupervisedWorker

# arq fails a job past max_tries without running it (nothing would be dead-lettered), so arq's limit is set
# out of reach: workers/process.py dead-letters a job past its own TRY_LIMIT before arq could drop it.
MAX_TRIES = 1_000_000


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`; tests add `burst=True, poll_delay=0`."""
    return {
        "functions": [
            func(process.process_call, name=PROCESS_CALL, max_tries=MAX_TRIES),
            func(process.fetch_transcript, name=FETCH_TRANSCRIPT, max_tries=MAX_TRIES),
            func(process.deliver, name=DELIVER, max_tries=MAX_TRIES),
        ],
        "redis_url": settings.redis_url,  # arq's pool and the batching client, any form (workers/runtime/supervise.py)
        "queue_name": settings.queue_name,
        "job_serializer": job_serializer,
        "job_deserializer": job_deserializer,
        "max_jobs": settings.worker_concurrency,
        "job_timeout": settings.job_timeout,
        "poll_delay": settings.worker_poll_delay,
        "job_completion_wait": settings.job_completion_wait,
        "max_tries": MAX_TRIES,
        "keep_result": 3600,
        "ctx": {"settings": settings},
        "on_startup": context.startup,
        "on_shutdown": context.shutdown,
        "handle_signals": True,
    }


def create_worker(settings: Settings, **overrides: Any) -> SupervisedWorker:
    """The worker, its health port already bound: a taken port is an OSError here, before Redis is asked."""
    worker = SupervisedWorker(**{**observe.options(worker_options(settings)), **overrides})  # record + trace
    worker.ctx["health_socket"] = health.listen(settings.worker_health_port)  # served from context.startup
    return worker
