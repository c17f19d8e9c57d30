"""What an erasure leaves behind: a tombstone per erased call (no personal data) and one audit line per run.

    {prefix}erased      a sorted set: call id by when it was erased (ms). Reconciliation and backfill skip the
                        calls in it (workers/fetch/listed.py), so an erased call is never imported again; the
                        console shows a call in it as erased.
    {prefix}erasures    a stream: one entry per `wavix-events forget` run: who, when, what kind of request,
                        how many calls, what each store gave up. Never a phone number; no call id either (the
                        tombstone holds those).

Both are kept TOMBSTONE_S (400 days), trimmed by age on each write and given that TTL, so they end a year
after the last erasure: longer than any reconciliation window (RECONCILE_LOOKBACK, hours) and than the usual
backfill (a year of calls at most). A backfill of calls erased longer ago than that would import them again:
erase them again after such a backfill (`forget` is idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from redis.asyncio import Redis

DAY = 86_400
TOMBSTONE_S = 400 * DAY


def tombstone_key(prefix: str) -> str:
    return f"{prefix}erased"


def audit_key(prefix: str) -> str:
    return f"{prefix}erasures"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def bury(redis: Redis, prefix: str, call_ids: Iterable[str]) -> None:
    """Adds the calls to the tombstone (keeping the first erasure's time), trimmed by age, with its TTL."""
    now = _now_ms()
    members = {call_id: now for call_id in call_ids}
    key = tombstone_key(prefix)
    async with redis.pipeline(transaction=True) as pipe:
        if members:
            pipe.zadd(key, members, nx=True)
        pipe.zremrangebyscore(key, "-inf", now - TOMBSTONE_S * 1000)
        pipe.expire(key, TOMBSTONE_S)
        await pipe.execute()


async def erased(redis: Redis, prefix: str, call_ids: Sequence[str]) -> dict[str, int]:
    """Which of `call_ids` are erased, with when (ms): one ZMSCORE."""
    if not call_ids:
        return {}
    scores = await redis.zmscore(tombstone_key(prefix), list(call_ids))
    return {call_id: int(score) for call_id, score in zip(call_ids, scores, strict=True) if score is not None}


async def audit(redis: Redis, prefix: str, fields: Mapping[str, str | int]) -> str:
    """Appends one audit line (trimming lines past TOMBSTONE_S); returns its id."""
    now = _now_ms()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(audit_key(prefix), dict(fields), minid=now - TOMBSTONE_S * 1000)  # type: ignore[arg-type]
        pipe.expire(audit_key(prefix), TOMBSTONE_S)
        entry, _ = await pipe.execute()
    return entry.decode() if isinstance(entry, bytes) else str(entry)
