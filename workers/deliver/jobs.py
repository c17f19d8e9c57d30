"""The `deliver` job: its argument (`Delivery`), its one job id per event and destination, and how it is queued.

    {prefix}deliver:{event_id}:{destination}

One id for every way a delivery is queued (a failed first try, a resume after a pause, a replay, a dead
letter replayed), so a delivery is never queued twice at once; a finished job's result record (arq keeps it
an hour) is cleared first, so the id is free again once the job has run. `requeue` queues many in the order
given, due 1 ms apart: the order in which the operator's deliveries go out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
from arq.constants import job_key_prefix, result_key_prefix
from redis.asyncio import Redis

from contract.jobs import DELIVER
from workers.runtime.queue import FollowUps


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A `deliver` job's argument: one event for one destination."""

    destination: str
    call_id: str
    event_id: str
    event: bytes  # the CloudEvents JSON, exactly as the first attempt had it
    first_at_ms: int  # the first try (or the release from a pause): the retry schedule's max_age counts from here
    tries: int = 1  # tries made before this job began (1: the inline first try); the schedule's step follows
    replay: bool = False  # an operator's replay: sent even where the ledger says delivered


def job_id(prefix: str, delivery: Delivery) -> str:
    return f"{prefix}deliver:{delivery.event_id}:{delivery.destination}"


def encode_delivery(delivery: Delivery) -> bytes:
    return msgspec.msgpack.encode(delivery)


decode_delivery = msgspec.msgpack.Decoder(Delivery).decode


async def requeue(redis: Redis, deliveries: Sequence[Delivery], *, prefix: str, queue: str, expiry_s: int) -> int:
    """Queues each delivery's job in the order given (due 1 ms apart); returns how many were queued (a delivery
    whose job is waiting already is not queued again: that job will send it)."""
    return len(await requeued(redis, deliveries, prefix=prefix, queue=queue, expiry_s=expiry_s))


async def requeued(redis: Redis, deliveries: Sequence[Delivery], *, prefix: str, queue: str,
                   expiry_s: int) -> list[Delivery]:
    """`requeue`, answering which deliveries were queued."""
    follow_ups = FollowUps(redis, queue=queue, expiry_s=expiry_s)
    queued = []
    for i, delivery in enumerate(deliveries):
        jid = job_id(prefix, delivery)
        if not await redis.exists(job_key_prefix + jid):
            await redis.delete(result_key_prefix + jid)
        if await follow_ups.enqueue(DELIVER, delivery, job_id=jid, defer_s=i / 1000):
            queued.append(delivery)
    return queued


def now_ms() -> int:
    return time.time_ns() // 1_000_000
