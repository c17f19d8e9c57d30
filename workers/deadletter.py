"""Dead letters: work that failed for good lands here, with why, how often it was tried, and its payload.

One Redis Stream (`DEAD_LETTER_STREAM`), one entry per failure: fields `kind` (which job or sink),
`reason`, `attempts`, `call_id`, `payload` (the bytes needed to replay it), `failed_at_ms`.
`wavix-events dlq` (workers/operate/dlq.py) reads it back and replays it.

A letter is kept DEAD_LETTER_RETENTION (a setting, 30 days by default: `retention_s`), then it ends unreplayed:
each write trims the letters older than that (`XADD MINID`, exact: letters are few) and gives the stream that TTL,
so the stream ends when its newest letter is past retention; a replay refuses a letter past retention that no
write has trimmed yet (`past_retention`). A call's letter keeps the call's delivered marks `marks_kept_s`, a day
longer than the letter (its replayed job may wait in the queue), so a replay skips the destinations that have its
events (workers/deliver/ledger.py); they used to be kept forever, and a purge or a letter never replayed left
them so (issue #22, docs/keys.md). A job's letter carries no more of its webhook than a replay reads
(contract/privacy.py `slim_body`: the call's direction and who answered, no numbers).
"""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis

from contract import logs

log = logs.get("workers.deadletter")

DAY = 86_400
DEFAULT_RETENTION_S = 30 * DAY  # DEAD_LETTER_RETENTION's default (contract/settings.py)


def marks_kept_s(retention_s: int = DEFAULT_RETENTION_S) -> int:
    """How long a dead-lettered call keeps its delivered marks: a day longer than its letter."""
    return retention_s + DAY


def horizon_ms(retention_s: int = DEFAULT_RETENTION_S) -> int:
    """Letters whose id (the time they were written, ms) is below this are past retention."""
    return int((time.time() - retention_s) * 1000)


def past_retention(entry_id: str, retention_s: int = DEFAULT_RETENTION_S) -> bool:
    """Whether a letter's id says it was written more than `retention_s` ago (False for an id that is none)."""
    written = entry_id.split("-")[0]
    return written.isdigit() and int(written) < horizon_ms(retention_s)


async def trim(redis: Redis, stream: str, retention_s: int = DEFAULT_RETENTION_S) -> int:
    """Drops the letters past retention (a write does so too); returns how many went."""
    return int(await redis.xtrim(stream, minid=horizon_ms(retention_s), approximate=False))


async def dead_letter(
    redis: Redis, stream: str, *, kind: str, reason: str, attempts: int, payload: bytes, call_id: str = "",
    retention_s: int = DEFAULT_RETENTION_S,
) -> str:
    """Appends one dead letter, trims those past retention and gives the stream that TTL; returns its id."""
    fields: dict[str, str | int | bytes] = {"kind": kind, "reason": reason, "attempts": attempts, "call_id": call_id,
                                            "payload": payload, "failed_at_ms": time.time_ns() // 1_000_000}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(stream, fields, minid=horizon_ms(retention_s), approximate=False)  # type: ignore[arg-type]
        pipe.expire(stream, retention_s)
        entry_id, _ = await pipe.execute()
    log.error("dead_letter", kind=kind, reason=reason, attempts=attempts, call_id=call_id)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the dead-letter stream, as an operator sees it."""

    id: str
    kind: str
    reason: str
    attempts: int
    call_id: str
    failed_at_ms: int
    payload: bytes


def entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    text = {k.decode(): v for k, v in fields.items()}
    return DeadLetter(
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        kind=text.get("kind", b"").decode(), reason=text.get("reason", b"").decode(errors="replace"),
        attempts=int(text.get("attempts", b"0")), call_id=text.get("call_id", b"").decode(),
        failed_at_ms=int(text.get("failed_at_ms", b"0")), payload=text.get("payload", b""),
    )


async def list_dead(redis: Redis, stream: str, *, count: int = 100) -> list[DeadLetter]:
    return [entry(i, f) for i, f in await redis.xrange(stream, count=count)]
