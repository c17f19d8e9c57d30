"""Dead letters: work that failed for good lands here, with why, how often it was tried, and its payload.

One Redis Stream (`DEAD_LETTER_STREAM`), one entry per failure: fields `kind` (which job or sink),
`reason`, `attempts`, `call_id`, `payload` (the bytes needed to replay it), `failed_at_ms`.
`wavix-events dlq list` and `dlq replay` read it back.
"""

from __future__ import annotations

import time

import msgspec
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contract import logs
from contract.jobs import JOB_FUNCTIONS

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


def _entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    text = {k.decode(): v for k, v in fields.items()}
    return DeadLetter(
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        kind=text.get("kind", b"").decode(), reason=text.get("reason", b"").decode(errors="replace"),
        attempts=int(text.get("attempts", b"0")), call_id=text.get("call_id", b"").decode(),
        failed_at_ms=int(text.get("failed_at_ms", b"0")), payload=text.get("payload", b""),
    )


async def list_dead(redis: Redis, stream: str, *, count: int = 100) -> list[DeadLetter]:
    return [_entry(i, f) for i, f in await redis.xrange(stream, count=count)]


async def replay(redis: ArqRedis, stream: str, entry_id: str, *, queue_name: str, key_prefix: str) -> str:
    """Puts one dead letter back to work and removes it from the stream; returns what was done.

    A job's letter (its payload is the job's own argument, msgpack) is queued again as a new job, under
    its own id so arq's uniqueness does not refuse it; a Slack alert's letter is queued again past the
    one-alert-per-call gate.
    """
    try:
        found = await redis.xrange(stream, min=entry_id, max=entry_id)
    except ResponseError as e:
        raise KeyError(f"{entry_id} is not a stream entry id") from e
    if not found:
        raise KeyError(f"no dead letter {entry_id}")
    letter = _entry(*found[0])
    if letter.kind in JOB_FUNCTIONS:
        argument = msgspec.msgpack.decode(letter.payload)
        await redis.enqueue_job(
            letter.kind, argument, _job_id=f"{key_prefix}replay:{letter.id}", _queue_name=queue_name
        )
        done = f"queued {letter.kind} for call {letter.call_id}"
    elif letter.kind == "slack_alert":
        from workers.alerts import DeliveryPolicy, decode_alert
        from workers.outbox import queue_alert

        await queue_alert(redis, decode_alert(letter.payload), force=True, policy=DeliveryPolicy(prefix=key_prefix))
        done = f"queued the Slack alert for call {letter.call_id} again"
    else:
        raise ValueError(f"dead letter {letter.id} has an unknown kind {letter.kind!r}")
    await redis.xdel(stream, letter.id)
    log.info("dead_letter.replayed", entry=letter.id, kind=letter.kind, call_id=letter.call_id)
    return done
