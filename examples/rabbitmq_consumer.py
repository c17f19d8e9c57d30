"""Consume wavix-events from RabbitMQ with aio-pika: a durable queue, manual acks, repeats dropped by event id.

    python -m examples.rabbitmq_consumer --url amqp://guest:guest@127.0.0.1:5672/ --exchange wavix.events \
        --queue billing --binding 'wavix.call.#'

We publish persistent messages to a durable topic exchange with routing key = event type
(docs/asyncapi.yaml), so bind `wavix.call.#` for everything or `wavix.call.completed` for one type. The queue
is durable and each message is acknowledged only after it was handled: a consumer that dies leaves its
unacknowledged messages to be redelivered. RabbitMQ does not drop repeats (a retried publish, a replayed
dead letter): every copy has the same `message_id`, the event id, so we skip ids handled already.
Needs only `aio-pika`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Seen:
    """The last `size` event ids handled, in memory: a restart forgets them (keep them in your database if
    a repeat after a restart would hurt, or make handling idempotent)."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)


async def consume(connection: AbstractConnection, exchange: str, queue: str, handle: Handler,
                  binding: str = "wavix.call.#") -> None:
    """Runs until cancelled: declares exchange, queue and binding, handles each event once, acks each message."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=50)  # at most 50 unacknowledged messages in flight
    topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    messages = await channel.declare_queue(queue, durable=True)
    await messages.bind(topic, binding)
    seen = Seen()
    async with messages.iterator() as incoming:
        async for message in incoming:
            try:
                event = json.loads(message.body)
                if event["id"] not in seen:
                    await handle(event)
                    seen.add(event["id"])
            except Exception:
                await message.nack(requeue=True)  # not handled: RabbitMQ delivers it again
                raise
            await message.ack()


async def print_event(event: dict[str, Any]) -> None:
    if event["type"] == "wavix.call.erased":  # the call was erased: delete what you keep of it (issue #25)
        print("erase", event["subject"], *event["data"]["event_ids"], flush=True)
        return
    print(event["type"], event["subject"], event["data"].get("outcome"), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--exchange", default="wavix.events")
    parser.add_argument("--queue", default="wavix.example")
    parser.add_argument("--binding", default="wavix.call.#")
    args = parser.parse_args()
    connection = await aio_pika.connect_robust(args.url)  # reconnects by itself
    try:
        await consume(connection, args.exchange, args.queue, print_event, args.binding)
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
