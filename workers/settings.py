"""The arq worker's settings, built from our `Settings` (never from module-level globals)."""

from __future__ import annotations

from typing import Any

from arq import func
from arq.connections import RedisSettings
from arq.worker import Worker

from contract.jobs import FETCH_TRANSCRIPT, PROCESS_CALL, job_deserializer, job_serializer
from contract.settings import Settings
from workers import jobs


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`; tests add `burst=True, poll_delay=0`."""
    return {
        "functions": [
            func(jobs.process_call, name=PROCESS_CALL),
            func(jobs.fetch_transcript, name=FETCH_TRANSCRIPT),
        ],
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.queue_name,
        "job_serializer": job_serializer,
        "job_deserializer": job_deserializer,
        "handle_signals": True,
    }


def create_worker(settings: Settings, **overrides: Any) -> Worker:
    return Worker(**{**worker_options(settings), **overrides})
