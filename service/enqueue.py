"""Enqueue: the dedup mark, the arq job and the call's webhook record, in one Redis round trip that cannot
half-happen; and, for webhooks that start no work, the record alone, in one round trip too.

The script is `contract.intake.ENQUEUE_ONE`, the very one the reconciler runs for calls it finds in
Wavix's list: it appends the webhook's `Receipt` to the call's list (duplicates included, so the worker
sees every webhook of the call whatever order they came in), stops if the work was seen within the
dedup window, else queues arq's job record and entry and only then sets the dedup mark. A transcription
webhook goes to the call's one transcript job (`contract.intake.transcript_job_id`), which the worker's
poll shares. arq's own `_job_id` uniqueness is not enough: it only holds while the job or its result
exists, not for the whole dedup window.

Progress events (ringing, answered, ...) start no work but say things the worker needs (`direction`),
so `record()` appends them with the small record script: still one round trip per webhook.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

from arq.constants import job_key_prefix, result_key_prefix
from redis.exceptions import NoScriptError

from contract import tracing
from contract.intake import ENQUEUE_ONE, MODE_TRANSCRIPT, MODE_WEBHOOK, call_job_id, seen_key, transcript_job_id
from contract.jobs import Receipt, encode_job, function_for, job_serializer
from contract.webhooks import WEBHOOKS_KEPT, Kind, Webhook, webhooks_key
from service.redisbatch import BatchedRedis

_JOB_KEY, _RESULT_KEY = job_key_prefix.encode(), result_key_prefix.encode()
_MODES = {True: MODE_TRANSCRIPT.encode(), False: MODE_WEBHOOK.encode()}

# KEYS: webhook list. ARGV: receipt, ttl s.
_RECORD = f"""
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -{WEBHOOKS_KEPT}, -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class _Script:
    """A Lua script called by its SHA (loaded on every new connection), by its text after a script flush."""

    def __init__(self, redis: BatchedRedis, source: str) -> None:
        self._redis = redis
        self._source = source.encode()
        redis.on_connect.append(("SCRIPT", "LOAD", self._source))
        self._sha = hashlib.sha1(self._source).hexdigest().encode()

    async def __call__(self, keys: Sequence[bytes], args: Sequence[bytes]) -> bool:
        """Runs the script; redis' errors propagate (a 503 for the app)."""
        try:
            return bool(await self._redis.call(b"EVALSHA", self._sha, len(keys), *keys, *args))
        except NoScriptError:  # the script cache was flushed under a live connection: send the script this once
            return bool(await self._redis.call(b"EVAL", self._source, len(keys), *keys, *args))


class Enqueuer:
    """Turns an accepted webhook into a queued job, once per dedup key, and records every webhook of a call."""

    def __init__(
        self, redis: BatchedRedis, *, queue_name: str, key_prefix: str, dedup_ttl_s: int, job_expiry_s: int
    ) -> None:
        self._prefix = key_prefix
        self._enqueue = _Script(redis, ENQUEUE_ONE)
        self._record = _Script(redis, _RECORD)
        self._queue = queue_name.encode()
        self._ttl = b"%d" % dedup_ttl_s
        self._expiry = b"%d" % (job_expiry_s * 1000)

    async def enqueue(self, webhook: Webhook, body: bytes) -> bool:
        """True when a job was queued, False when the same work was already seen (the webhook is recorded
        either way).

        Raises redis' `ConnectionError`/`TimeoutError` when Redis does not answer: nothing is marked.
        """
        now_ms = time.time_ns() // 1_000_000
        transcript = webhook.kind is Kind.TRANSCRIPTION
        job_id = (transcript_job_id if transcript else call_job_id)(self._prefix, webhook.call_id)
        jid = job_id.encode()
        receipt = Receipt(
            kind=webhook.kind, call_id=webhook.call_id, event=webhook.event, received_at_ms=now_ms, body=body,
            traceparent=tracing.traceparent(),  # the receive span (service/tracing.py); None when tracing is off
        )
        job = encode_job(function_for(webhook), receipt, now_ms)
        with tracing.span("enqueue", **{"wavix.call_id": webhook.call_id}):
            return await self._enqueue(
                (seen_key(self._prefix, webhook.dedup_key).encode(), _JOB_KEY + jid, _RESULT_KEY + jid, self._queue,
                 webhooks_key(self._prefix, webhook.call_id).encode()),
                (self._ttl, self._expiry, job, jid, b"%d" % now_ms, job_serializer(receipt), _MODES[transcript]),
            )

    async def record(self, webhook: Webhook, body: bytes) -> None:
        """Appends a webhook that starts no work to its call's list. Raises redis' errors like `enqueue`."""
        receipt = Receipt(
            kind=webhook.kind, call_id=webhook.call_id, event=webhook.event,
            received_at_ms=time.time_ns() // 1_000_000, body=body,
        )
        key = webhooks_key(self._prefix, webhook.call_id).encode()
        await self._record((key,), (job_serializer(receipt), self._ttl))
