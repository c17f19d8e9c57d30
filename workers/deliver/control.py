"""The operator's hold on a destination: pause it, resume it; a paused destination's deliveries wait parked.

    wavix-events pause crm      new events for crm, and its retries as they come due, are parked
    wavix-events resume crm     the parked deliveries are queued again, oldest event first

Paused is a field of the destination's health hash (`paused_ms`, workers/deliver/health.py) that every try's
claim reads in its one round trip (workers/deliver/ledger.py); a try that finds it parks its delivery in
`{prefix}parked:{name}` (scored by its first try) and ends: no try is spent and no job polls while the pause
lasts, however long. `park` re-checks the flag in the same script that parks, and `resume` clears it before
it reads the parked set, so a delivery parked during a resume is never stranded. Resuming queues the parked
deliveries in order (due 1 ms apart, workers/deliver/jobs.py) and only then removes them: a resume cut short
leaves the rest parked and listed by `wavix-events destinations`, and running it again sends them.

A released delivery keeps the tries it had spent, and its retry schedule's max_age starts again: time paused
is the operator's, not the destination's.
"""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis

from contract import logs
from workers.deliver import health
from workers.deliver.jobs import Delivery, decode_delivery, encode_delivery, now_ms, requeue

log = logs.get("workers.deliver.control")

_BATCH = 200
_PARK = """
if redis.call('HEXISTS', KEYS[1], 'paused_ms') == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], 'NX', ARGV[1], ARGV[3])
return 1
"""


async def pause(redis: Redis, prefix: str, name: str) -> bool:
    """Pauses `name`; False when it was paused already."""
    paused = bool(await redis.hsetnx(health.keys(prefix, name).health, "paused_ms", str(now_ms())))  # type: ignore[misc]
    log.warning("destination.paused", sink=name, already=not paused)
    return paused


async def park(redis: Redis, prefix: str, delivery: Delivery) -> bool:
    """Parks `delivery` while its destination is paused; False (nothing parked) when it is not paused any more."""
    k = health.keys(prefix, delivery.destination)
    args: list[str | int | bytes] = [delivery.first_at_ms, encode_delivery(delivery), delivery.event_id]
    parked = bool(await redis.register_script(_PARK)(keys=[k.health, k.parked, k.backlog], args=args))
    if parked:
        log.info("delivery.parked", call_id=delivery.call_id, event_id=delivery.event_id, sink=delivery.destination)
    return parked


async def resume(redis: Redis, prefix: str, name: str, *, queue: str, expiry_s: int) -> int:
    """Resumes `name` and queues its parked deliveries, oldest event first; returns how many were queued."""
    k = health.keys(prefix, name)
    await redis.hdel(k.health, "paused_ms")  # type: ignore[misc]
    await redis.hset(k.health, "resumed_ms", str(now_ms()))  # type: ignore[misc]  # auto-disable counts from here
    released = 0
    while members := await redis.zrange(k.parked, 0, _BATCH - 1):
        start = now_ms()
        deliveries = [msgspec.structs.replace(decode_delivery(m), first_at_ms=start) for m in members]
        released += await requeue(redis, deliveries, prefix=prefix, queue=queue, expiry_s=expiry_s)
        await redis.zrem(k.parked, *members)
    log.warning("destination.resumed", sink=name, released=released)
    return released

