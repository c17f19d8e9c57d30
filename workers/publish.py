"""Publish: an event onto the Redis Stream, at most once per event id, in one atomic step.

A Lua script sets the event's publish mark and appends the stream entry together, so a retried job
(or a repeated transcript webhook) finds the mark and appends nothing, and a crash can never leave the
mark without the entry. The mark lives as long as the dedup window.

Stream entry fields: `event` (the CloudEvents JSON), `id` (the event id), `type`, `call_id`.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from contract.events import CloudEvent, encode_event

_PUBLISH = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return false end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                  'event', ARGV[3], 'id', ARGV[4], 'type', ARGV[5], 'call_id', ARGV[6])
"""


class StreamPublisher:
    """The Redis Streams destination every event reaches (issue #6 adds the others)."""

    name = "redis"

    def __init__(self, redis: Redis, *, stream: str, maxlen: int, mark_ttl_s: int, key_prefix: str) -> None:
        self._script: Any = redis.register_script(_PUBLISH)
        self._marks = f"{key_prefix}published:"
        self._stream = stream
        self._maxlen = maxlen
        self._ttl = mark_ttl_s

    async def publish(self, event: CloudEvent) -> str | None:
        """The new entry's id, or None when this event was already published."""
        keys = [f"{self._marks}{event.id}:{self.name}", self._stream]
        args = [self._ttl, self._maxlen, encode_event(event), event.id, event.type, event.subject]
        entry = await self._script(keys=keys, args=args)
        return entry.decode() if isinstance(entry, bytes) else None
