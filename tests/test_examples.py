"""The example consumers run: each gets real events, repeats included, from the project's own sinks.

For every destination kind, real events (tests/helpers/event_examples.py: built by workers.enrich) go
through `open_sink` three times each: twice with one idempotency key (a retried delivery) and once with
another (a second destination on the same channel, or a replay after the sink forgot the first). Whatever
the transport keeps of those copies, the example consumer must hand each event id to its handler exactly
once and acknowledge every copy. Each test uses its own stream, exchange, queue, subject or port and
deletes what it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import nats
import nats.js.errors
from redis.asyncio import Redis

from contract.events import CloudEvent
from examples import nats_consumer, rabbitmq_consumer, redis_consumer, webhook_receiver
from tests.helpers.event_examples import real_events
from tests.helpers.sinks import SECRET
from workers.deliver.sinks import SinkOptions, idempotency_key, open_sink

EVENTS = [event for _, event in real_events()]
IDS = sorted(event.id for event in EVENTS)


async def publish_with_repeats(url: str, name: str, *, secret: str | None = None, prefix: str = "test:") -> None:
    """Each event: published, published again with the same key, and once more under another destination's key."""
    sink = await open_sink(url, name=name, secret=secret, options=SinkOptions(key_prefix=prefix, timeout_s=5.0))
    try:
        for event in EVENTS:
            for key in (idempotency_key(event, name), idempotency_key(event, name), idempotency_key(event, "other")):
                await sink.publish(event, idempotency_key=key)
    finally:
        await sink.close()


async def until(done: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await done():
        assert time.monotonic() < deadline, "the consumer did not finish in time"
        await asyncio.sleep(0.05)


def collector() -> tuple[list[str], Callable[[dict[str, Any]], Awaitable[None]]]:
    handled: list[str] = []

    async def handle(event: dict[str, Any]) -> None:
        handled.append(event["id"])

    return handled, handle


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_redis_consumer_handles_each_event_once_and_acks_every_entry() -> None:
    """Redis: the stream holds repeats (another destination's key); the group consumer handles each id once."""
    tag = f"test:examples:{uuid.uuid4().hex}"
    stream, group = f"{tag}:stream", f"{tag}:group"
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    handled, handle = collector()
    try:
        await publish_with_repeats(f"redis://127.0.0.1:6379/0?stream={stream}", "redis", prefix=f"{tag}:")
        assert await redis.xlen(stream) == 2 * len(EVENTS)  # the same-key repeat was dropped by the sink, not this
        task = asyncio.create_task(redis_consumer.consume(redis, stream, group, "c1", handle))

        async def drained() -> bool:
            groups = await redis.xinfo_groups(stream)  # empty until the consumer created its group
            return len(handled) >= len(EVENTS) and any(g["pending"] == 0 and g["lag"] == 0 for g in groups)

        try:
            await until(drained)
            await asyncio.sleep(0.2)  # room for a wrong extra call
        finally:
            await stop(task)
        assert sorted(handled) == IDS
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{tag}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_rabbitmq_consumer_handles_each_event_once_with_manual_acks() -> None:
    """RabbitMQ keeps every copy (three per event); the consumer handles each id once and leaves the queue empty."""
    tag = uuid.uuid4().hex
    exchange, queue = f"test.examples.{tag}", f"test.examples.{tag}"
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    handled, handle = collector()
    try:
        task = asyncio.create_task(rabbitmq_consumer.consume(connection, exchange, queue, handle))

        async def declared() -> bool:
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await (await connection.channel()).declare_queue(queue, passive=True)
                return True
            return False

        await until(declared)  # the consumer bound its queue: publishing is routable now
        tally = await (await connection.channel()).declare_queue(exclusive=True)  # counts the copies sent
        await tally.bind(exchange, "#")
        await publish_with_repeats(f"amqp://guest:guest@127.0.0.1:5672/?exchange={exchange}", "rabbitmq")
        copies = await (await connection.channel()).declare_queue(tally.name, passive=True)
        assert copies.declaration_result.message_count == 3 * len(EVENTS)

        async def drained() -> bool:
            state = await (await connection.channel()).declare_queue(queue, passive=True)
            count = state.declaration_result.message_count
            return len(handled) >= len(EVENTS) and count == 0

        try:
            await until(drained)
            await asyncio.sleep(0.3)  # room for a wrong extra call
        finally:
            await stop(task)
        assert sorted(handled) == IDS
    finally:
        admin = await connection.channel()
        await admin.queue_delete(queue)
        await admin.exchange_delete(exchange)
        await connection.close()


async def test_nats_consumer_handles_each_event_once_from_a_durable_consumer() -> None:
    """JetStream keeps the copy published under another key; the durable consumer handles each id once, acks all."""
    tag = uuid.uuid4().hex[:12]
    stream, subject, durable = f"TEST_EXAMPLES_{tag}", f"test.examples.{tag}", f"durable-{tag}"
    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    handled, handle = collector()
    try:
        await publish_with_repeats(f"nats://127.0.0.1:4222/?stream={stream}&subject={subject}", "nats")
        assert (await js.stream_info(stream)).state.messages == 2 * len(EVENTS)
        task = asyncio.create_task(nats_consumer.consume(js, stream, subject, durable, handle))

        async def drained() -> bool:
            try:
                info = await js.consumer_info(stream, durable)
            except nats.js.errors.NotFoundError:
                return False
            return len(handled) >= len(EVENTS) and info.num_pending == 0 and info.num_ack_pending == 0

        try:
            await until(drained)
            await asyncio.sleep(0.2)  # room for a wrong extra call
        finally:
            await stop(task)
        assert sorted(handled) == IDS
    finally:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
        await nc.close()


async def test_webhook_receiver_verifies_signatures_and_handles_each_event_once() -> None:
    """Three signed POSTs per event, each answered 2xx; each id is handled once; a bad signature gets 401."""
    handled: list[str] = []
    server = webhook_receiver.make_server("127.0.0.1", 0, SECRET, lambda event: handled.append(event["id"]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/wavix"
    try:
        await publish_with_repeats(url, "webhook", secret=SECRET)  # raises unless every POST got a 2xx
        forged = await open_sink(url, name="webhook", secret="whsec_" + "Zm9yZ2VkLWtleS0wMTIzNDU2Nzg5YWJjZGVm")
        try:
            event: CloudEvent = EVENTS[0]
            status = None
            try:
                await forged.publish(event, idempotency_key="forged")
            except Exception as e:  # Permanent: the receiver refused the signature
                status = getattr(e, "status", None)
        finally:
            await forged.close()
        assert status == 401
        assert sorted(handled) == IDS
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
