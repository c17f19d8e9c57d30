"""Consume wavix-events from NATS JetStream with nats-py: a durable pull consumer, explicit acks, no repeats.

    python -m examples.nats_consumer --url nats://127.0.0.1:4222 --stream WAVIX --subject wavix.events \
        --durable billing

We publish each event to `<subject>.<event type>` in a JetStream stream (docs/asyncapi.yaml), so
`<subject>.>` is every event. A durable consumer keeps its position on the server: after a restart it
continues where it stopped, and a message not acknowledged within the ack wait is delivered again.
JetStream drops repeated publishes inside its duplicate window (`Nats-Msg-Id`); a redelivery or a replay
after the window still repeats an event with the same `id`, so we skip ids handled already.
Needs only `nats-py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.js import JetStreamContext

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


async def consume(js: JetStreamContext, stream: str, subject: str, durable: str, handle: Handler) -> None:
    """Runs until cancelled: fetches batches from the durable consumer, handles each event once, acks each."""
    subscription = await js.pull_subscribe(f"{subject}.>", durable=durable, stream=stream)
    seen = Seen()
    while True:
        try:
            batch = await subscription.fetch(50, timeout=1.0)
        except TimeoutError:  # nothing new within a second: ask again
            continue
        for message in batch:
            event = json.loads(message.data)
            if event["id"] not in seen:
                await handle(event)  # an exception here leaves the message unacked: it comes again
                seen.add(event["id"])
            await message.ack()


async def print_event(event: dict[str, Any]) -> None:
    if event["type"] == "wavix.call.erased":  # the call was erased: delete what you keep of it (issue #25)
        print("erase", event["subject"], *event["data"]["event_ids"], flush=True)
        return
    print(event["type"], event["subject"], event["data"].get("outcome"), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="WAVIX")
    parser.add_argument("--subject", default="wavix.events")
    parser.add_argument("--durable", default="example")
    args = parser.parse_args()
    nc = await nats.connect(args.url)
    try:
        await consume(nc.jetstream(), args.stream, args.subject, args.durable, print_event)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
