"""Queue: how a worker queues follow-up work (a transcript poll, a delivery retry) in one round trip.

arq's `enqueue_job` spends five round trips on it (WATCH, EXISTS, MULTI, PSETEX + ZADD, EXEC) to keep
job ids unique; a Lua script does the same check and writes atomically in one, and writes arq's own job
record, so arq's worker runs the job as if `enqueue_job` had queued it.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from arq.constants import job_key_prefix, result_key_prefix

from contract.jobs import encode_job
from contract.redisbatch import Scripting

_ENQUEUE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return 1
"""


class FollowUps:
    """Queues jobs on `queue`, each at most once per job id while it or its result exists."""

    def __init__(self, redis: Scripting, *, queue: str, expiry_s: int) -> None:
        self._script: Any = redis.register_script(_ENQUEUE_IF_ABSENT)
        self._queue = queue
        self._expiry_ms = expiry_s * 1000

    async def enqueue(self, function: str, argument: msgspec.Struct, *, job_id: str, defer_s: float) -> bool:
        """True when queued, False when a job with this id is already waiting or finished recently."""
        now_ms = time.time_ns() // 1_000_000
        due_ms = now_ms + int(defer_s * 1000)
        keys = [job_key_prefix + job_id, result_key_prefix + job_id, self._queue]
        args = [encode_job(function, argument, now_ms), self._expiry_ms + due_ms - now_ms, job_id, due_ms]
        return bool(await self._script(keys=keys, args=args))
