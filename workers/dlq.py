"""`wavix-events dlq`: what an operator does with dead letters: list them, replay one, several or all."""

from __future__ import annotations

import sys
import time

from arq.connections import RedisSettings, create_pool

from contract.jobs import job_deserializer, job_serializer
from contract.settings import Settings
from workers.deadletter import list_dead, replay


async def run(settings: Settings, action: str, ids: list[str], *, replay_all: bool, limit: int) -> int:
    redis = await create_pool(
        RedisSettings.from_dsn(settings.redis_url), job_serializer=job_serializer, job_deserializer=job_deserializer
    )
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
