"""The chaos run's destinations: its routing file (SINKS_CONFIG), and what each destination received.

    redis     the run's Redis Stream `wavix:events` (read by chaos/report.py, as the bar always was)
    webhook   a signed-webhook endpoint served in the chaos process (`HookCounter`)
    nats      NATS JetStream on 127.0.0.1:4222: a stream of the run's own (`NatsStream`), deleted at the end

Each destination is counted as a consumer would see it: every message that arrived, per event id. The
webhook endpoint checks each POST's Standard Webhooks signature with its own code (a bad one is answered
401 and counted apart), answers the rest 204, and counts them per `webhook-id` and per event id. NATS is
read back with a consumer from the stream's start: what JetStream dropped under its `Nats-Msg-Id`
duplicate window is what the broker drops for every consumer, so it does not count as a repeat.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
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

SECRET = "whsec_" + base64.b64encode(b"chaos-run-webhook-key-0123456789").decode()
NATS_URL = "nats://127.0.0.1:4222"
NATS_DUPLICATE_WINDOW_S = 120.0  # JetStream's default, written out: a run's repeats fall well inside it
TOLERANCE_S = 300  # the Standard Webhooks window for webhook-timestamp


class _Id(msgspec.Struct):
    id: str


_event_id = msgspec.json.Decoder(_Id).decode


def routing_file(path: Path, redis_url: str, hook_url: str, nats_stream: str, nats_subject: str) -> Path:
    """Writes the run's routing file: every event to all three destinations."""
    path.write_text(
        "destinations:\n"
        f"  - name: redis\n    url: {redis_url}?stream=wavix:events\n"
        f"  - name: webhook\n    url: {hook_url}\n    secret: {SECRET}\n"
        f"  - name: nats\n    url: {NATS_URL}/?stream={nats_stream}&subject={nats_subject}\n",
        encoding="utf-8",
    )
    return path


def signature_ok(headers: dict[str, str], body: bytes, now: float) -> bool:
    """Standard Webhooks verification, from the spec (not the sink's code): any listed v1 signature may match."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(now - int(stamp)) > TOLERANCE_S:
        return False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    return any(version == "v1" and hmac.compare_digest(value.encode(), expected)
               for version, _, value in (s.partition(",") for s in headers.get("webhook-signature", "").split()))


@dataclass
class HookCounter:
    """A small HTTP/1.1 endpoint (keep-alive, Content-Length bodies) counting verified POSTs."""

    per_webhook_id: Counter[str] = field(default_factory=Counter)
    per_event: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/chaos"

    async def start(self) -> HookCounter:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        """Counts one POST: 401 (not counted as received) unless its signature holds, else 204."""
        if not signature_ok(headers, body, time.time()):
            self.bad_signatures += 1
            return 401
        self.per_webhook_id[headers["webhook-id"]] += 1
        self.per_event[_event_id(body).id] += 1
        return 204

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError,
                                 asyncio.CancelledError, msgspec.DecodeError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.answer(headers, body)
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        writer.transport.abort()


@dataclass
class NatsStream:
    """The run's own JetStream stream: created before the workers start, read back, deleted at the end."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
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
            self._nc = await asyncio.wait_for(nats.connect(NATS_URL, allow_reconnect=False), 5)
        except (OSError, TimeoutError, nats.errors.Error) as e:
            raise RuntimeError(f"NATS is not answering on {NATS_URL} (the chaos run needs JetStream): {e}") from e
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
