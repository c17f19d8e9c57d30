"""Dead letters: work that failed for good lands here, with why, how often it was tried, and its payload.

One Redis Stream (`DEAD_LETTER_STREAM`), one entry per failure: fields `kind` (which job or sink),
`reason`, `attempts`, `call_id`, `payload` (the bytes needed to replay it), `failed_at_ms`.
`wavix-events dlq` (workers/dlq.py) reads it back and replays it.
"""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis

from contract import logs

log = logs.get("workers.deadletter")


async def dead_letter(
    redis: Redis, stream: str, *, kind: str, reason: str, attempts: int, payload: bytes, call_id: str = ""
) -> str:
    """Appends one dead letter and returns its stream id."""
    entry_id = await redis.xadd(
        stream,
        {
            "kind": kind,
            "reason": reason,
            "attempts": attempts,
            "call_id": call_id,
            "payload": payload,
            "failed_at_ms": time.time_ns() // 1_000_000,
        },
    )
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
