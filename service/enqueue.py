"""Enqueue: the dedup mark, the arq job and the call's webhook record, in one Redis round trip that cannot
half-happen; and, for webhooks that start no work, the record alone, in one round trip too.

The script is `contract.intake`'s intake function (`ENQUEUE_MANY` here), the very one the reconciler runs for
calls it finds in Wavix's list: it appends the webhook's `Receipt` to the call's list (duplicates included,
so the worker sees every webhook of the call whatever order they came in), stops if the work was seen within the
dedup window, else queues arq's job record and entry and only then sets the dedup mark. A transcription
webhook goes to the call's one transcript job (`contract.intake.transcript_job_id`), which the worker's
poll shares, or to that job's follow-up while it runs. arq's own `_job_id` uniqueness is not enough: it only
holds while the job or its result exists, not for the whole dedup window.

Progress events (ringing, answered, ...) start no work but say things the worker needs (`direction`),
so `record()` appends them with the small record script: still one round trip per webhook.

Batching: the webhooks that reach `enqueue()` while the previous batch is in Redis (at least those of one
event-loop turn) go as ONE `ENQUEUE_MANY` call (the same seven keys and seven arguments per webhook, one
answer each), not one `ENQUEUE_ONE` per webhook in a pipeline. Measured under wrk (git history):
Redis runs one script call instead of N, and the receiver packs one command and reads one reply per batch.
The batch is atomic as a whole, in arrival order, so two deliveries of one call in a batch still queue once.
A batch holds at most `MAX_BATCH` webhooks; an error reply fails every webhook of its batch (a 503 each).
The batch's time in Redis is observed once per batch (`on_written`, the receiver's `wavix_enqueue_seconds`),
not once per webhook: the same figure (every webhook of a batch waits for the same write) for one histogram
observation and two clock reads per batch instead of per webhook, ~1.5 µs of a webhook's ~120 µs of CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from redis.exceptions import ResponseError

from contract import tracing
from contract.accounts import DEFAULT
from contract.intake import (
    ENQUEUE_MANY,
    FOLLOW_UP_SUFFIX,
    MODE_TRANSCRIPT,
    MODE_WEBHOOK,
    call_job_id,
    scoped,
    seen_key,
    transcript_job_id,
)
from contract.jobs import Receipt, encode_job, function_for, job_serializer
from contract.redisbatch import BatchedRedis, Script
from contract.webhooks import WEBHOOKS_KEPT, Kind, Webhook, webhooks_key

_JOB_KEY, _RESULT_KEY = job_key_prefix.encode(), result_key_prefix.encode()
_RUNNING_KEY, _FOLLOW_UP = in_progress_key_prefix.encode(), FOLLOW_UP_SUFFIX.encode()
_MODES = {True: MODE_TRANSCRIPT.encode(), False: MODE_WEBHOOK.encode()}
MAX_BATCH = 128  # webhooks per ENQUEUE_MANY call: bounds the time Redis spends in one script

# KEYS: webhook list. ARGV: receipt, ttl s.
_RECORD = f"""
if redis.call('RPUSH', KEYS[1], ARGV[1]) > {WEBHOOKS_KEPT} then redis.call('LTRIM', KEYS[1], -{WEBHOOKS_KEPT}, -1) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


_Pending = list[tuple[list[bytes], list[bytes], "asyncio.Future[bool]"]]


class _Batcher:
    """Runs ENQUEUE_MANY for the webhooks gathered while the previous batch was in Redis."""

    def __init__(self, script: Script, on_written: Callable[[float], None] | None) -> None:
        self._script = script
        self._on_written = on_written
        self._pending: _Pending = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, keys: list[bytes], args: list[bytes]) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, args, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._flush(batch)
        finally:
            self._flusher = None
            for _, _, future in self._pending:  # only when cancelled
                future.cancel()
            self._pending = []

    async def _flush(self, batch: _Pending) -> None:
        keys: list[bytes] = []
        args: list[bytes] = []
        for k, a, _ in batch:
            keys += k
            args += a
        started = time.perf_counter()
        try:
            answers = await self._script(keys, args)
            if self._on_written is not None:
                self._on_written(time.perf_counter() - started)
            if not isinstance(answers, list) or len(answers) != len(batch):
                raise ResponseError(f"ENQUEUE_MANY answered {answers!r:.80} for {len(batch)} webhooks")
        except Exception as e:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        except BaseException:
            for _, _, future in batch:
                future.cancel()
            raise
        for (_, _, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(bool(answer))


class Enqueuer:
    """Turns an accepted webhook into a queued job, once per dedup key, and records every webhook of a call."""

    def __init__(
        self, redis: BatchedRedis, *, queue_name: str, key_prefix: str, dedup_ttl_s: int, job_expiry_s: int,
        on_written: Callable[[float], None] | None = None,
    ) -> None:
        """`on_written`: called with each batch's seconds in Redis (a metric), when it was written."""
        self._prefix = key_prefix
        self._enqueue = _Batcher(redis.register_script(ENQUEUE_MANY), on_written)
        self._record = redis.register_script(_RECORD)
        self._queue = queue_name.encode()
        self._ttl = b"%d" % dedup_ttl_s
        self._expiry = b"%d" % (job_expiry_s * 1000)

    async def enqueue(self, webhook: Webhook, body: bytes, account: str = DEFAULT) -> bool:
        """True when a job was queued, False when the same work was already seen (the webhook is recorded
        either way). `account`: the one the token named; the call's keys are scoped by it.

        Raises redis' `ConnectionError`/`TimeoutError` when Redis does not answer: nothing is marked.
        """
        now_ms = time.time_ns() // 1_000_000
        transcript = webhook.kind is Kind.TRANSCRIPTION
        receipt = Receipt(
            kind=webhook.kind, call_id=webhook.call_id, event=webhook.event, received_at_ms=now_ms, body=body,
            traceparent=tracing.traceparent(),  # the receive span (service/tracing.py); None when tracing is off
            account=account,
        )
        job_id = (transcript_job_id if transcript else call_job_id)(self._prefix, receipt.key)
        jid = job_id.encode()
        job = encode_job(function_for(webhook), receipt, now_ms)
        dedup = scoped(account, webhook.dedup_key)
        keys = [seen_key(self._prefix, dedup).encode(), _JOB_KEY + jid, _RESULT_KEY + jid, self._queue,
                webhooks_key(self._prefix, receipt.key).encode(), _RUNNING_KEY + jid, _JOB_KEY + jid + _FOLLOW_UP]
        args = [self._ttl, self._expiry, job, jid, b"%d" % now_ms, job_serializer(receipt), _MODES[transcript]]
        if not tracing.enabled():  # the span's context manager alone costs ~1.4 µs a webhook
            return await self._enqueue(keys, args)
        with tracing.span("enqueue", **{"wavix.call_id": webhook.call_id}):
            return await self._enqueue(keys, args)

    async def record(self, webhook: Webhook, body: bytes, account: str = DEFAULT) -> None:
        """Appends a webhook that starts no work to its call's list. Raises redis' errors like `enqueue`."""
        receipt = Receipt(
            kind=webhook.kind, call_id=webhook.call_id, event=webhook.event,
            received_at_ms=time.time_ns() // 1_000_000, body=body, account=account,
        )
        key = webhooks_key(self._prefix, receipt.key).encode()
        await self._record((key,), (job_serializer(receipt), self._ttl))
