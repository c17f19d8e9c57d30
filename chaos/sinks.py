"""The chaos run's destinations: its routing file (SINKS_CONFIG), and what each destination received.

    redis     the run's Redis Stream `wavix:events` (read by chaos/report.py, as the bar always was)
    webhook   a signed-webhook endpoint served in the chaos process (`HookCounter`)
    nats      NATS JetStream (127.0.0.1:4222, or the several-host run's own server): a stream of the run's own
              (`NatsStream`), deleted at the end

Each destination is counted as a consumer that follows its protocol sees it: per event id, what the
consumer took in. The webhook endpoint is the signed-webhook stand-in (sandbox/hooks.py): it checks each
POST's Standard Webhooks signature from the spec (a bad one is answered 401 and counted apart) and answers
the rest 204. A Standard Webhooks consumer keeps the `webhook-id`s it has processed and takes in only the
first POST of each ("use the webhook-id as an idempotency key"): the run counts exactly that, and counts
the POSTs it answered without taking in as **redeliveries**, reported beside the bar, each checked to
carry the first POST's body byte for byte. NATS is read back with a consumer from the stream's start:
what JetStream dropped under its `Nats-Msg-Id` duplicate window is what the broker drops for every
consumer. A repeat under another id (`webhook-id`, `Nats-Msg-Id`, the stream's event id) is one no
consumer can drop, and shows as a duplicate.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from sandbox.hooks import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"chaos-run-webhook-key-0123456789").decode()
NATS_URL = "nats://127.0.0.1:4222"
NATS_DUPLICATE_WINDOW_S = 120.0  # JetStream's default, written out: a run's repeats fall well inside it


class _Id(msgspec.Struct):
    id: str


_event_id = msgspec.json.Decoder(_Id).decode


def routing_file(path: Path, redis_url: str, hook_url: str, nats_stream: str, nats_subject: str,
                 nats_url: str = NATS_URL) -> Path:
    """Writes the run's routing file: every event to all three destinations."""
    path.write_text(
        "destinations:\n"
        f"  - name: redis\n    url: {redis_url}?stream=wavix:events\n"
        f"  - name: webhook\n    url: {hook_url}\n    secret: {SECRET}\n"
        f"  - name: nats\n    url: {nats_url}/?stream={nats_stream}&subject={nats_subject}\n",
        encoding="utf-8",
    )
    return path


class HookCounter(WebhookReceiver):
    """The signed-webhook stand-in (sandbox/hooks.py) with the run's secret, counted as a Standard Webhooks
    consumer: the first verified POST of each `webhook-id` is taken in, later ones are redeliveries; bad
    signatures were answered 401."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(secret=SECRET, host=host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks/chaos"

    @property
    def per_event(self) -> Counter[str]:
        """What the consumer took in, per event id: one per `webhook-id` (its first POST)."""
        return Counter(_event_id(body).id for body in self._first_bodies().values())

    @property
    def redelivered(self) -> int:
        """POSTs repeating a `webhook-id` already taken in: answered 2xx, dropped by the consumer."""
        return len(self.received) - len(self._first_bodies())

    @property
    def redelivered_changed(self) -> int:
        """Redeliveries whose body differs from their `webhook-id`'s first: what dropping them would lose."""
        first = self._first_bodies()
        return sum(1 for r in self.received if r.body != first[r.headers["webhook-id"]])

    def _first_bodies(self) -> dict[str, bytes]:
        first: dict[str, bytes] = {}
        for r in self.received:
            first.setdefault(r.headers["webhook-id"], r.body)
        return first

    @property
    def bad_signatures(self) -> int:
        return self.rejected


@dataclass
class NatsStream:
    """The run's own JetStream stream: created before the workers start, read back, deleted at the end."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    url: str = NATS_URL
    _nc: Client | None = None
    _consumer: JetStreamContext.PullSubscription | None = None
    _seen: Counter[str] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return f"CHAOS_{self.tag}"

    @property
    def subject(self) -> str:
        return f"chaos.{self.tag}"

    async def create(self) -> NatsStream:
        try:
            self._nc = await asyncio.wait_for(nats.connect(self.url, allow_reconnect=False), 5)
        except (OSError, TimeoutError, nats.errors.Error) as e:
            raise RuntimeError(f"NATS is not answering on {self.url} (the chaos run needs JetStream): {e}") from e
        config = StreamConfig(name=self.name, subjects=[f"{self.subject}.>"],
                              duplicate_window=NATS_DUPLICATE_WINDOW_S)
        await self._nc.jetstream().add_stream(config)
        return self

    async def per_event(self) -> Counter[str]:
        """Every message in the stream so far, per event id: a durable consumer (deleted with the stream) reads
        from the start, and each call goes on where the last one stopped."""
        assert self._nc is not None
        js = self._nc.jetstream()
        if self._consumer is None:
            self._consumer = await js.pull_subscribe(f"{self.subject}.>", durable="chaos", stream=self.name)
        stored = (await js.stream_info(self.name)).state.messages
        with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
            while (read := sum(self._seen.values())) < stored:
                for message in await self._consumer.fetch(min(1000, stored - read), timeout=2.0):
                    self._seen[_event_id(message.data).id] += 1
                    await message.ack()
        return Counter(self._seen)

    async def delete(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(nats.js.errors.NotFoundError, nats.errors.Error, OSError, TimeoutError):
                await self._nc.jetstream().delete_stream(self.name)
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                await self._nc.close()
            self._nc, self._consumer = None, None


def figures(per_event: Counter[str] | dict[str, int], expected: Iterable[str]) -> dict[str, Any]:
    """One destination's line: events received, distinct event ids, ids received more than once, and the
    expected ids (acknowledged calls' completed events) that never arrived."""
    return {
        "received": sum(per_event.values()), "distinct": len(per_event),
        "duplicates": sum(1 for n in per_event.values() if n > 1),
        "missing": sum(1 for event in expected if event not in per_event),
        "duplicate_ids": sorted(event for event, n in per_event.items() if n > 1)[:20],
    }
