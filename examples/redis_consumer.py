"""Consume wavix-events from a Redis Stream: a consumer group, XACK after handling, repeats dropped by event id.

    python -m examples.redis_consumer --url redis://127.0.0.1:6379/0 --stream wavix:events --group billing

Each entry has the fields `event` (the CloudEvent, JSON), `id`, `type` and `call_id` (docs/asyncapi.yaml).
A consumer group gives each entry to one of its consumers and remembers, per consumer, what was delivered
but not yet acknowledged (the pending list): after a crash this consumer first re-reads its own pending
entries, then new ones. An event can still arrive twice (a replayed dead letter, a second destination
writing to the same stream): its `id` is the same, so we keep the ids handled in Redis for a week and skip
repeats. Needs only `redis` (redis-py 5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

Handler = Callable[[dict[str, Any]], Awaitable[None]]
SEEN_TTL_S = 7 * 86_400  # how long a handled id is remembered: longer than any redelivery we expect


async def consume(redis: Redis, stream: str, group: str, consumer: str, handle: Handler) -> None:
    """Runs until cancelled: reads the group's entries, handles each event once, acknowledges every entry."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)  # "0": the group starts at the oldest entry
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):  # the group exists already: fine
            raise
    position = "0"  # "0": our own pending entries first; ">" afterwards: entries never delivered to the group
    while True:
        reply = await redis.xreadgroup(group, consumer, {stream: position}, count=100, block=1000)
        entries = reply[0][1] if reply else []
        if position == "0" and not entries:
            position = ">"
            continue
        for entry_id, fields in entries:
            if fields:  # a pending entry trimmed from the stream comes back empty: just acknowledge it
                await handle_once(redis, group, json.loads(fields[b"event"]), handle)
            await redis.xack(stream, group, entry_id)


async def handle_once(redis: Redis, group: str, event: dict[str, Any], handle: Handler) -> None:
    """Calls `handle` unless this group handled the event's id before; marks it handled afterwards.

    A crash between `handle` and the mark means the event is handled again after restart: make `handle`
    idempotent (an upsert keyed by event id) if that matters to you.
    """
    seen = f"{group}:seen:{event['id']}"
    if await redis.exists(seen):
        return
    await handle(event)
    await redis.set(seen, "1", ex=SEEN_TTL_S)


async def print_event(event: dict[str, Any]) -> None:
    if event["type"] == "wavix.call.erased":  # the call was erased: delete what you keep of it (issue #25)
        print("erase", event["subject"], *event["data"]["event_ids"], flush=True)
        return
    print(event["type"], event["subject"], event["data"].get("outcome"), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--stream", default="wavix:events")
    parser.add_argument("--group", default="example")
    parser.add_argument("--consumer", default=socket.gethostname())
    args = parser.parse_args()
    redis = Redis.from_url(args.url)
    try:
        await consume(redis, args.stream, args.group, args.consumer, print_event)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
