"""Dead letters: work that failed for good lands here, with why, how often it was tried, and its payload.

One Redis Stream (`DEAD_LETTER_STREAM`), one entry per failure: fields `kind` (which job or sink),
`reason`, `attempts`, `call_id`, `payload` (the bytes needed to replay it), `failed_at_ms`.
`wavix-events dlq list` and `dlq replay` read it back.
"""

from __future__ import annotations

import time

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
