"""Queue: the connection to arq's queue, and how a worker queues follow-up work (a transcript poll, a delivery
retry) in one round trip.

`connect` is the one way our roles open arq's pool (the worker, `dlq`): made from REDIS_URL by
contract/redisurl.py, so a Sentinel URL finds the primary with our timeouts (arq's own Sentinel pool sets none,
and a Sentinel cut off from the network would hold a connect for a TCP timeout), and checked with one PING:
an unreachable Redis is one error, not arq's five retries.

arq's `enqueue_job` spends five round trips on it (WATCH, EXISTS, MULTI, PSETEX + ZADD, EXEC) to keep
job ids unique; a Lua script does the same check and writes atomically in one, and writes arq's own job
record, so arq's worker runs the job as if `enqueue_job` had queued it.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix

from contract import redisurl
from contract.jobs import encode_job, job_deserializer, job_serializer
from contract.redisbatch import Scripting


async def connect(url: str, *, queue_name: str, timeout_s: float = 5.0, **options: Any) -> ArqRedis:
    """arq's client of the queue at `url` (any REDIS_URL form), answering PING; redis-py's error if not."""
    pool = redisurl.client(url, redis_class=ArqRedis, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                           **options)
    pool.job_serializer, pool.job_deserializer = job_serializer, job_deserializer
    pool.default_queue_name = queue_name
    try:
        await pool.ping()
    except BaseException:
        await redisurl.close(pool)
        raise
    return pool

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
