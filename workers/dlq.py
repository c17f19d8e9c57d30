"""`wavix-events dlq`: what an operator does with dead letters: list them, replay one, several or all."""

from __future__ import annotations

import sys
import time

import msgspec
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.exceptions import ResponseError

from contract import logs
from contract.jobs import JOB_FUNCTIONS, job_deserializer, job_serializer
from contract.settings import Settings
from workers.alert.outbox import queue_alert
from workers.alert.rules import DeliveryPolicy, decode_alert
from workers.deadletter import entry, list_dead

log = logs.get("workers.dlq")


async def run(settings: Settings, action: str, ids: list[str], *, replay_all: bool, limit: int) -> int:
    # No connection retries: an unreachable Redis is one line from the CLI (exit 1), not five warnings first.
    redis_settings = RedisSettings.from_dsn(settings.redis_url)
    redis_settings.conn_retries = 0
    redis = await create_pool(redis_settings, job_serializer=job_serializer, job_deserializer=job_deserializer)
    stream = settings.dead_letter_stream
    try:
        letters = await list_dead(redis, stream, count=limit if action == "list" else 10**6)
        if action == "list":
            for d in letters:
                at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.failed_at_ms / 1000))
                print(f"{d.id}  {at}Z  {d.kind:<16} call={d.call_id}  attempts={d.attempts}  {d.reason}")
            print(f"{len(letters)} dead letter(s) in {stream}")
            return 0
        chosen = [d.id for d in letters] if replay_all else ids
        if not chosen:
            print("dlq replay: name entry ids, or --all", file=sys.stderr)
            return 2
        failed = 0
        for entry_id in chosen:
            try:
                done = await replay(
                    redis, stream, entry_id, queue_name=settings.queue_name, key_prefix=settings.key_prefix
                )
                print(f"{entry_id}: {done}")
            except (KeyError, ValueError) as e:
                failed += 1
                print(f"{entry_id}: not replayed ({e})", file=sys.stderr)
        return 1 if failed else 0
    finally:
        await redis.aclose()


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
    letter = entry(*found[0])
    if letter.kind in JOB_FUNCTIONS:
        argument = msgspec.msgpack.decode(letter.payload)
        await redis.enqueue_job(
            letter.kind, argument, _job_id=f"{key_prefix}replay:{letter.id}", _queue_name=queue_name
        )
        done = f"queued {letter.kind} for call {letter.call_id}"
    elif letter.kind == "slack_alert":
        await queue_alert(redis, decode_alert(letter.payload), force=True, policy=DeliveryPolicy(prefix=key_prefix))
        done = f"queued the Slack alert for call {letter.call_id} again"
    else:
        raise ValueError(f"dead letter {letter.id} has an unknown kind {letter.kind!r}")
    await redis.xdel(stream, letter.id)
    log.info("dead_letter.replayed", entry=letter.id, kind=letter.kind, call_id=letter.call_id)
    return done
