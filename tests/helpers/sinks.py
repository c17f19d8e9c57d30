"""What the sink tests need besides the sinks: events, a cuttable TCP proxy, a verifying webhook receiver.

`TcpProxy` sits between a sink and its broker; `cut()` aborts every connection and stops listening (the
broker is "down": connections are refused), `restore()` listens again on the same port. `AnswerLoser` is one
that lets the first request naming a marker through and loses its answer: the server ran it, the client
never hears so (a connection reset at the worst moment).

`WebhookReceiver` is a small HTTP/1.1 server (keep-alive, Content-Length bodies) that checks each request's
Standard Webhooks signature with its own code, not the sink's: a request with a bad or stale signature is
answered 401 and not recorded; a good one is recorded and answered `status` (204 unless a test says else),
or the next of `script`'s statuses while any are left, after `delay_s` (a slow endpoint). Every verified
request is in `requests`, whatever it was answered; `received` keeps the ones answered 2xx.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import aio_pika
import asyncpg
import nats
import nats.js.errors
from redis.asyncio import Redis

from contract import events as ev
from sandbox.hooks import WebhookReceiver as _Receiver
from workers.deliver.sinks import SinkOptions

SECRET = "whsec_" + base64.b64encode(b"conformance-suite-key-0123456789").decode()


def make_event(call_id: str | None = None, **data: Any) -> ev.CallCompletedEvent:
    """A `wavix.call.completed` event; `data` overrides fields of its data (e.g. disposition="busy")."""
    call = call_id or str(uuid.uuid4())
    fields: dict[str, Any] = {
        "call_id": call, "direction": "outbound", "from_": ev.Party("+14302287001", "US"),
        "to": ev.Party("+33170363950", "FR"), "outcome": "answered_human", "parent_call_id": None,
        "date": datetime(2026, 6, 30, 10, 0, tzinfo=UTC), "disposition": "answered", "answered_by": "human",
        "duration_s": "42", "currency": "USD", "per_minute": "0.027", "charge": "0.01",
        "forward_fee": None, "destination": "France", "sip_trunk": None, "recording_url": None, "alert_reasons": (),
    }
    fields.update(data)
    return ev.CallCompletedEvent(
        id=ev.event_id(call, ev.COMPLETED), subject=call, time=datetime(2026, 6, 30, 10, 1, tzinfo=UTC),
        dataschema=ev.dataschema_for(ev.CallCompleted), data=ev.CallCompleted(**fields),
    )


class TcpProxy:
    """A loopback TCP forwarder to (host, port) that a test can cut and restore."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self.port = 0

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def cut(self) -> None:
        """Stops listening and aborts every open connection, both ways."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        await asyncio.sleep(0.05)  # let both ends see the reset

    async def restore(self) -> None:
        await self.start()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


class AnswerLoser(TcpProxy):
    """A TcpProxy that forwards the first request containing `marker`, drops whatever answers it, and resets
    that connection once the server has had `settle_s` to run it; every other request passes untouched."""

    def __init__(self, host: str, port: int, marker: bytes, settle_s: float = 0.2) -> None:
        super().__init__(host, port)
        self.marker, self.settle_s = marker, settle_s
        self.lost = False  # whether an answer was lost yet

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._transports |= {writer.transport, up_writer.transport}
        muted = False

        async def requests() -> None:
            nonlocal muted
            while data := await reader.read(65536):
                if not self.lost and self.marker in data:
                    self.lost = muted = True  # before the write: no byte of the answer gets through
                up_writer.write(data)
                await up_writer.drain()
                if muted:
                    await asyncio.sleep(self.settle_s)
                    return

        async def answers() -> None:
            while data := await up_reader.read(65536):
                if not muted:
                    writer.write(data)
                    await writer.drain()

        both = [asyncio.ensure_future(requests()), asyncio.ensure_future(answers())]
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)  # one side ended (or the answer was lost)
        writer.transport.abort()
        up_writer.transport.abort()
        await asyncio.gather(*both, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


@dataclass
class WebhookReceiver(_Receiver):
    """The stand-in with this suite's secret by default."""

    secret: str = SECRET


# --- One harness per transport: a unique destination, a way to read it back, a way to break it for good. ---


@dataclass
class Received:
    """One delivered message as a consumer sees it. `key` is the idempotency key it carries (None: none)."""

    body: bytes
    event_id: str
    type: str
    key: str | None
    attributes: dict[str, Any]


class Harness:
    """Base: `url(port)` for the sink, `received(n)` reads back, `make_permanent()` makes the next publish fail."""

    kind = ""
    dedups = False  # the transport itself drops a repeated idempotency key
    secret: str | None = None
    upstream_port = 0

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:12]

    async def setup(self) -> None: ...

    def url(self, port: int | None = None) -> str:
        raise NotImplementedError

    async def read(self) -> list[Received]:
        raise NotImplementedError

    async def make_permanent(self) -> None:
        raise NotImplementedError

    async def cleanup(self) -> None: ...

    async def received(self, expected: int, timeout: float = 5.0) -> list[Received]:
        """Everything delivered, once at least `expected` arrived (or `timeout`), plus a settle for extras."""
        deadline = time.monotonic() + timeout
        got = await self.read()
        while len(got) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            got = await self.read()
        await asyncio.sleep(0.2)
        return await self.read()

    def options(self) -> SinkOptions:
        """Short waits, and Redis marks under this test's own prefix."""
        return SinkOptions(key_prefix=f"test:sinks:{self.tag}:", timeout_s=1.0, reconnect_wait_s=0.1)


class RedisHarness(Harness):
    kind, dedups, upstream_port = "redis", True, 6379

    async def setup(self) -> None:
        self.stream = f"test:sinks:{self.tag}:stream"
        self.redis = Redis.from_url(f"redis://127.0.0.1:{self.upstream_port}/0")
        await self.redis.ping()

    def url(self, port: int | None = None) -> str:
        return f"redis://127.0.0.1:{port or self.upstream_port}/0?stream={self.stream}&maxlen=1000"

    async def read(self) -> list[Received]:
        entries = await self.redis.xrange(self.stream)
        return [
            Received(f[b"event"], f[b"id"].decode(), f[b"type"].decode(), None, {"call_id": f[b"call_id"].decode()})
            for _, f in entries
        ]

    async def make_permanent(self) -> None:
        await self.redis.set(self.stream, "not a stream", ex=60)  # WRONGTYPE for XADD

    async def cleanup(self) -> None:
        keys = [key async for key in self.redis.scan_iter(match=f"test:sinks:{self.tag}:*")]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()


class RabbitHarness(Harness):
    kind, upstream_port = "rabbitmq", 5672

    async def setup(self) -> None:
        self.connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{self.upstream_port}/")
        channel = await self.connection.channel()
        self.exchange = await channel.declare_exchange(f"test.sinks.{self.tag}", aio_pika.ExchangeType.TOPIC,
                                                       durable=True)
        self.queue = await channel.declare_queue(exclusive=True)
        await self.queue.bind(self.exchange, "#")
        self.got: list[Received] = []

    def url(self, port: int | None = None) -> str:
        return f"amqp://guest:guest@127.0.0.1:{port or self.upstream_port}/?exchange={self.exchange.name}"

    async def read(self) -> list[Received]:
        while (m := await self.queue.get(no_ack=True, fail=False)) is not None:
            key = m.headers.get("idempotency-key")
            attributes = {"message_type": m.type, "content_type": m.content_type, "headers": dict(m.headers),
                          "delivery_mode": m.delivery_mode, "routing_key": m.routing_key}
            self.got.append(Received(m.body, str(m.message_id), str(m.routing_key), str(key), attributes))
        return list(self.got)

    async def make_permanent(self) -> None:
        await self.queue.unbind(self.exchange, "#")  # nothing bound: a mandatory message comes back

    async def cleanup(self) -> None:
        await self.queue.delete(if_unused=False, if_empty=False)
        await self.exchange.delete()
        await self.connection.close()


class NatsHarness(Harness):
    kind, dedups, upstream_port = "nats", True, 4222

    async def setup(self) -> None:
        self.nc = await nats.connect(f"nats://127.0.0.1:{self.upstream_port}")
        self.js = self.nc.jetstream()
        self.stream, self.subject = f"TEST_SINKS_{self.tag}", f"test.sinks.{self.tag}"

    def url(self, port: int | None = None) -> str:
        return f"nats://127.0.0.1:{port or self.upstream_port}/?stream={self.stream}&subject={self.subject}"

    async def read(self) -> list[Received]:
        try:
            stored = (await self.js.stream_info(self.stream)).state.messages
        except nats.js.errors.NotFoundError:
            return []
        consumer = await self.js.pull_subscribe(f"{self.subject}.>", stream=self.stream)  # ephemeral, from the start
        messages: list[Any] = []
        with contextlib.suppress(TimeoutError):
            while len(messages) < stored:
                messages += await consumer.fetch(stored - len(messages), timeout=1.0)
        await consumer.unsubscribe()
        return [
            Received(m.data, ev.decode_event(m.data).id, m.subject.removeprefix(f"{self.subject}."),
                     (m.headers or {}).get("Nats-Msg-Id"), {"subject": m.subject, "headers": dict(m.headers or {})})
            for m in messages
        ]

    async def make_permanent(self) -> None:
        config = (await self.js.stream_info(self.stream)).config
        config.max_msg_size = 64  # every event is larger: JetStream answers 400
        await self.js.update_stream(config)

    async def cleanup(self) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.js.delete_stream(self.stream)
        await self.nc.close()


class WebhookHarness(Harness):
    kind, secret = "webhook", SECRET

    async def setup(self) -> None:
        self.receiver = await WebhookReceiver().start()
        self.upstream_port = self.receiver.port

    def url(self, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.upstream_port}/hooks/{self.tag}?token=t0ken"

    async def read(self) -> list[Received]:
        out = []
        for r in self.receiver.received:
            event = ev.decode_event(r.body)
            out.append(Received(r.body, event.id, event.type, r.headers["webhook-id"], {"headers": r.headers}))
        return out

    async def make_permanent(self) -> None:
        self.receiver.status = 400

    async def cleanup(self) -> None:
        await self.receiver.stop()


class PostgresHarness(Harness):
    """A schema of its own; what arrived is its `events` table (the first copy of each event id)."""

    kind, dedups = "postgres", True

    async def setup(self) -> None:
        from tests.helpers.postgres import PORT, POSTGRES_URL

        self.upstream_port, self.schema = PORT, f"test_sinks_{self.tag}"
        self.conn = await asyncpg.connect(POSTGRES_URL)

    def url(self, port: int | None = None) -> str:
        from tests.helpers.postgres import url_for

        return url_for(self.schema, port=port or self.upstream_port)

    async def read(self) -> list[Received]:
        if await self.conn.fetchval("SELECT to_regclass($1)", f"{self.schema}.events") is None:
            return []
        rows = await self.conn.fetch(f"SELECT event::text AS body, event_id, type FROM {self.schema}.events "
                                     "ORDER BY delivered_at, event_id")
        return [Received(r["body"].encode(), str(r["event_id"]), r["type"], None, {}) for r in rows]

    async def make_permanent(self) -> None:
        await self.conn.execute(f"ALTER TABLE {self.schema}.events ADD CONSTRAINT refuse CHECK (false) NOT VALID")

    async def cleanup(self) -> None:
        await self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        await self.conn.close()


HARNESSES: dict[str, type[Harness]] = {
    h.kind: h for h in (RedisHarness, RabbitHarness, NatsHarness, WebhookHarness, PostgresHarness)
}
