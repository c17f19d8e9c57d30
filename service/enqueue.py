"""Enqueue: the dedup mark and the arq job, written in one Redis round trip that cannot half-happen.

A Lua script runs atomically in Redis: if the call was seen within the dedup window it does nothing;
otherwise it writes arq's job record and queue entry (as `ArqRedis.enqueue_job` would, with our
msgpack serializer) and only then the dedup mark. Were a write ever to fail part-way, what remains is a
queued job without its mark (a possible repeat, which the worker tolerates), never a call marked seen
but not queued. arq's own `_job_id` uniqueness is not enough: it only holds while the job or its result
exists, not for the whole dedup window.
"""

from __future__ import annotations

import hashlib
import time

from arq.constants import job_key_prefix, result_key_prefix
from redis.exceptions import ResponseError

from contract.jobs import Receipt, encode_job, function_for
from contract.webhooks import Webhook
from service.resp import PipelinedRedis, bulk, pack

_JOB_KEY, _RESULT_KEY = job_key_prefix.encode(), result_key_prefix.encode()

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2], KEYS[3]) == 0 then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
end
redis.call('SET', KEYS[1], ARGV[5], 'EX', ARGV[1])
return 1
"""


class Enqueuer:
    """Turns an accepted webhook into a queued job, once per dedup key."""

    def __init__(
        self, redis: PipelinedRedis, *, queue_name: str, key_prefix: str, dedup_ttl_s: int, job_expiry_s: int
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._seen = f"{key_prefix}seen:"
        sha = hashlib.sha1(_ENQUEUE.encode()).hexdigest()
        redis.on_connect.append(pack("SCRIPT", "LOAD", _ENQUEUE))
        # The command's constant parts, packed once: only the call's own values are packed per request.
        self._evalsha = b"*12\r\n" + bulk(b"EVALSHA") + bulk(sha.encode()) + bulk(b"4")
        self._constants = bulk(queue_name.encode()) + bulk(b"%d" % dedup_ttl_s) + bulk(b"%d" % (job_expiry_s * 1000))

    async def enqueue(self, webhook: Webhook, body: bytes) -> bool:
        """True when a job was queued, False when the same work was already seen.

        Raises redis' `ConnectionError`/`TimeoutError` when Redis does not answer: nothing is marked.
        """
        now_ms = time.time_ns() // 1_000_000
        key = webhook.dedup_key
        jid = (self._prefix + key).encode()  # arq's keys are global: namespace our job ids too
        receipt = Receipt(
            kind=webhook.kind, call_id=webhook.call_id, event=webhook.event, received_at_ms=now_ms, body=body
        )
        job = encode_job(function_for(webhook), receipt, now_ms)
        keys_and_args = b"".join((
            bulk((self._seen + key).encode()), bulk(_JOB_KEY + jid), bulk(_RESULT_KEY + jid),
            self._constants, bulk(job), bulk(jid), bulk(b"%d" % now_ms),
        ))
        try:
            return bool(await self._redis.call(self._evalsha + keys_and_args))
        except ResponseError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
            # The script cache was flushed under a live connection: send the script itself this once.
            return bool(await self._redis.call(b"*12\r\n" + bulk(b"EVAL") + bulk(_ENQUEUE.encode()) + bulk(b"4")
                                               + keys_and_args))
