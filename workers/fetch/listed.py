"""Calls found by listing: a listed CDR read, a batch of them queued, a listing request retried.

Reconciliation (reconcile.py, the CDR list) and backfill (backfill.py, the NDJSON export) both end here:

    listed CDR bytes -> `read_listed` (call id checked by contract.webhooks' rules, date, disposition)
    -> `ListedIntake.offer`: ONE `contract.intake.ENQUEUE_MANY` (MODE_LISTED) per batch, the receiver's own
       script, so a call seen before (webhook, earlier pass, other reconciler) records and queues nothing
    -> a `process_call` job whose `Receipt` carries the listed CDR as its body, `source` and `listed_type`

`ListedIntake.seen` is the read-only check for a dry run: one pipelined EXISTS per call, one round trip.
Measured (bench/reconcile.py, sandbox and real Redis on loopback): 10,000 listed calls all seen before,
listing included, take 0.4-0.5 s: 10 pages, 10 EVALSHAs; encoding each job even when it is not queued
costs less than a second round trip per page would.
`with_retries` is how a listing request honours `workers.retry.RetryPolicy` (429 Retry-After, 5xx backoff)
outside a job: it sleeps the policy's delay, a bounded number of tries, then lets the error out.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from redis.asyncio import Redis

from contract import logs
from contract.accounts import DEFAULT
from contract.intake import ENQUEUE_MANY, FOLLOW_UP_SUFFIX, MODE_LISTED, call_job_id, scoped, seen_key
from contract.jobs import PROCESS_CALL, Receipt, encode_job, job_serializer
from contract.settings import Settings
from contract.webhooks import CALL_ID_PATTERN, MAX_CALL_ID, Kind, webhooks_key
from workers.privacy import tombstone
from workers.retry import CallError, RetryPolicy

log = logs.get("workers.fetch.listed")

T = TypeVar("T")
_CALL_ID = re.compile(CALL_ID_PATTERN)


class _Fields(msgspec.Struct, frozen=True):
    """The few fields of a listed CDR we read; each typed `Any` so a drifted type degrades, never fails."""

    call_id: Any = None
    uuid: Any = None
    disposition: Any = None
    date: Any = None
    duration: Any = None


_decode_fields = msgspec.json.Decoder(_Fields).decode


@dataclass(frozen=True)
class ListedCall:
    """One call as listed: its id, disposition, start and end (unix seconds, None when unreadable), raw CDR."""

    call_id: str
    event: str
    started_at: float | None
    ended_at: float | None
    body: bytes


def read_listed(body: bytes) -> ListedCall | None:
    """The listed CDR's facts; None (with a warning) when it is not JSON or its id breaks the id rules."""
    try:
        fields = _decode_fields(body)
    except msgspec.MsgspecError:
        log.warning("listed.unreadable", size=len(body))
        return None
    call_id = fields.call_id or fields.uuid
    if not isinstance(call_id, str) or len(call_id) > MAX_CALL_ID or _CALL_ID.fullmatch(call_id) is None:
        log.warning("listed.bad_call_id", call_id=str(call_id)[:MAX_CALL_ID] if call_id is not None else None)
        return None
    started = _unix(fields.date)
    duration = fields.duration if isinstance(fields.duration, int | float) else 0
    disposition = fields.disposition.strip().lower() if isinstance(fields.disposition, str) else ""
    ended = None if started is None else started + max(float(duration), 0.0)
    return ListedCall(call_id, disposition, started, ended, body)


def _unix(value: Any) -> float | None:
    """A CDR `date` (`2023-08-21T06:43:36.000Z`, or the older `2023-08-21 06:43:36`) as unix seconds, UTC."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class ListedIntake:
    """Queues listed calls in batches, each batch one round trip; answers which ones were queued."""

    def __init__(self, redis: Redis, *, queue_name: str, key_prefix: str, dedup_ttl_s: int, job_expiry_s: int,
                 account: str = DEFAULT) -> None:
        self._redis = redis
        self.account = account  # whose listing this is: its calls' jobs, keys and events carry it
        self._script = redis.register_script(ENQUEUE_MANY)
        self._queue, self._prefix = queue_name, key_prefix
        self._ttl, self._expiry = str(dedup_ttl_s), str(job_expiry_s * 1000)

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings, account: str = DEFAULT) -> ListedIntake:
        return cls(redis, queue_name=settings.queue_name, key_prefix=settings.key_prefix,
                   dedup_ttl_s=settings.webhook_dedup_ttl, job_expiry_s=settings.job_expiry, account=account)

    async def offer(self, calls: Sequence[ListedCall], *, source: str, listed_type: str) -> list[bool]:
        """True per call queued now, False per call seen before. Redis errors propagate (nothing half-done:
        the script is atomic per call)."""
        if not calls:
            return []
        buried = await tombstone.erased(self._redis, self._prefix, [c.call_id for c in calls])
        if buried:  # an erased call is never imported again (workers/privacy/tombstone.py): "seen before"
            answers = iter(await self.offer([c for c in calls if c.call_id not in buried], source=source,
                                            listed_type=listed_type))
            return [False if c.call_id in buried else next(answers) for c in calls]
        now_ms = time.time_ns() // 1_000_000
        keys: list[str] = []
        args: list[str | bytes] = []
        for call in calls:
            receipt = Receipt(kind=Kind.POST_CALL, call_id=call.call_id, event=call.event, received_at_ms=now_ms,
                              body=call.body, source=source, listed_type=listed_type, account=self.account)
            jid = call_job_id(self._prefix, receipt.key)
            keys += (self._seen(call), job_key_prefix + jid, result_key_prefix + jid,
                     self._queue, webhooks_key(self._prefix, receipt.key), in_progress_key_prefix + jid,
                     job_key_prefix + jid + FOLLOW_UP_SUFFIX)
            args += (self._ttl, self._expiry, encode_job(PROCESS_CALL, receipt, now_ms), jid, str(now_ms),
                     job_serializer(receipt), MODE_LISTED)
        answers = await self._script(keys=keys, args=args)
        return [bool(a) for a in answers]

    async def seen(self, calls: Sequence[ListedCall]) -> list[bool]:
        """Read-only: whether each call's dedup mark exists (one pipelined round trip); an erased call counts as
        seen (its tombstone: one more round trip)."""
        if not calls:
            return []
        buried = await tombstone.erased(self._redis, self._prefix, [c.call_id for c in calls])
        if buried:
            marks = iter(await self.seen([c for c in calls if c.call_id not in buried]))
            return [True if c.call_id in buried else next(marks) for c in calls]
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.exists(self._seen(call))
            return [bool(n) for n in await pipe.execute()]

    def _seen(self, call: ListedCall) -> str:
        """The call's dedup mark: the one its webhook sets (`Webhook.dedup_key`, scoped by the account)."""
        return seen_key(self._prefix, scoped(self.account, f"call:{call.call_id}"))


async def with_retries(request: Callable[[], Awaitable[T]], policy: RetryPolicy, *, tries: int, what: str,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    """`request()`, retried after the policy's delay (Retry-After honoured) while the policy allows and fewer
    than `tries` tries failed; the last `CallError` propagates."""
    attempt = 1
    while True:
        try:
            return await request()
        except CallError as e:
            decision = policy.decide(e, attempt)
            if not decision.retry or attempt >= tries:
                raise
            log.warning("listing.retry", request=what, reason=decision.reason, attempt=attempt)
            await sleep(decision.delay)
            attempt += 1
