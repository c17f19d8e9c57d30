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

from arq.constants import job_key_prefix, result_key_prefix
from redis.exceptions import ResponseError

from contract import tracing
from contract.intake import ENQUEUE_ONE, MODE_TRANSCRIPT, MODE_WEBHOOK, call_job_id, seen_key, transcript_job_id
from contract.jobs import Receipt, encode_job, function_for, job_serializer
from contract.webhooks import WEBHOOKS_KEPT, Kind, Webhook, webhooks_key
from service.resp import PipelinedRedis, bulk, pack

_JOB_KEY, _RESULT_KEY = job_key_prefix.encode(), result_key_prefix.encode()
_MODES = {True: bulk(MODE_TRANSCRIPT.encode()), False: bulk(MODE_WEBHOOK.encode())}

# KEYS: webhook list. ARGV: receipt, ttl s.
_RECORD = f"""
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -{WEBHOOKS_KEPT}, -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class _Script:
    """A Lua script called by its SHA (loaded on every new connection), by its text after a script flush."""

    def __init__(self, redis: PipelinedRedis, source: str, keys: int, args: int) -> None:
        self._redis = redis
        self._source = source.encode()
        redis.on_connect.append(pack("SCRIPT", "LOAD", source))
        self._head = b"*%d\r\n" % (3 + keys + args)
        self._evalsha = self._head + bulk(b"EVALSHA") + bulk(hashlib.sha1(self._source).hexdigest().encode())
        self._numkeys = bulk(b"%d" % keys)

    async def __call__(self, keys_and_args: bytes) -> bool:
        """Runs the script on pre-packed keys and arguments; redis' errors propagate (a 503 for the app)."""
        try:
            return bool(await self._redis.call(self._evalsha + self._numkeys + keys_and_args))
        except ResponseError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
            # The script cache was flushed under a live connection: send the script itself this once.
            command = self._head + bulk(b"EVAL") + bulk(self._source) + self._numkeys + keys_and_args
            return bool(await self._redis.call(command))


class Enqueuer:
    """Turns an accepted webhook into a queued job, once per dedup key, and records every webhook of a call."""

    def __init__(
        self, redis: PipelinedRedis, *, queue_name: str, key_prefix: str, dedup_ttl_s: int, job_expiry_s: int
    ) -> None:
        self._prefix = key_prefix
        self._enqueue = _Script(redis, ENQUEUE_ONE, keys=5, args=7)
        self._record = _Script(redis, _RECORD, keys=1, args=2)
        # The command's constant parts, packed once: only the call's own values are packed per request.
        self._queue = bulk(queue_name.encode())
        self._ttl = bulk(b"%d" % dedup_ttl_s)
        self._expiry = bulk(b"%d" % (job_expiry_s * 1000))

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
            return await self._enqueue(b"".join((
                bulk(seen_key(self._prefix, webhook.dedup_key).encode()), bulk(_JOB_KEY + jid),
                bulk(_RESULT_KEY + jid), self._queue, bulk(webhooks_key(self._prefix, webhook.call_id).encode()),
                self._ttl, self._expiry, bulk(job), bulk(jid), bulk(b"%d" % now_ms), bulk(job_serializer(receipt)),
                _MODES[transcript],
            )))

    async def record(self, webhook: Webhook, body: bytes) -> None:
        """Appends a webhook that starts no work to its call's list. Raises redis' errors like `enqueue`."""
        receipt = Receipt(
            kind=webhook.kind, call_id=webhook.call_id, event=webhook.event,
            received_at_ms=time.time_ns() // 1_000_000, body=body,
        )
        await self._record(
            bulk(webhooks_key(self._prefix, webhook.call_id).encode()) + bulk(job_serializer(receipt)) + self._ttl
        )
