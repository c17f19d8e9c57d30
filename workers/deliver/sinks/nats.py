"""NATS JetStream sink: publish to `<subject>.<event type>`, deduplicated by `Nats-Msg-Id`, ack checked.

`nats://127.0.0.1:4222/?stream=WAVIX&subject=wavix.events[&duplicate_window=120]`: at connect the stream
is looked up and, when missing, created with subjects `<subject>.>` and the given duplicate window
(seconds; the server's default, 2 minutes, when absent). An existing stream is used as it is.

Each event goes to `<subject>.<event type>` (e.g. `wavix.events.wavix.call.completed`) with headers
`Nats-Msg-Id` = idempotency key (JetStream drops a repeat inside its duplicate window: the ack says
`duplicate`, which is success) and `Nats-Expected-Stream` (so a subject captured by another stream fails
instead of landing there). The body is the structured CloudEvent, `Content-Type: application/cloudevents+json`.

nats-py reconnects by itself (forever, `reconnect_wait_s` apart) and buffers publishes made meanwhile;
`publish` still waits for the ack only `timeout_s`, so a broker outage surfaces as Transient, and a
buffered copy that reaches the stream later is dropped as a duplicate of the retry (same Nats-Msg-Id).

Errors:
    no ack in time, disconnected/reconnecting, no stream answered, 503, 5xx    Transient
    400 from JetStream (message too large, stream config refuses it)           Permanent
"""

from __future__ import annotations

import asyncio
import contextlib

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from contract import logs
from contract.events import CONTENT_TYPE, CloudEvent, encode_event
from workers.deliver.sinks.base import SinkOptions, permanent, query_params, redact, transient, without_params
from workers.retry import CallError

log = logs.get("workers.deliver.sinks.nats")

_OUR_PARAMS = frozenset({"stream", "subject", "duplicate_window"})


class NatsSink:
    """One JetStream stream on one (self-reconnecting) NATS connection."""

    def __init__(self, url: str, *, name: str, options: SinkOptions) -> None:
        params = query_params(url)
        self.name = name
        self.stream = params["stream"]
        self.subject = params["subject"]
        self._window = float(params.get("duplicate_window") or 0)
        self._url = without_params(url, _OUR_PARAMS)
        self._options = options
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        async with self._lock:  # one dial for all concurrent publishers
            if self._nc is None or self._nc.is_closed:
                self._nc = await self._dial()
                self._js = self._nc.jetstream(timeout=self._options.timeout_s)
                self._stream_ready = False
            if not self._stream_ready:
                await self._ensure_stream()

    async def publish(self, event: CloudEvent, *, idempotency_key: str) -> None:
        await self.connect()
        assert self._js is not None
        headers = {"Nats-Msg-Id": idempotency_key, "Content-Type": CONTENT_TYPE}
        try:
            ack = await self._js.publish(
                f"{self.subject}.{event.type}", encode_event(event),
                timeout=self._options.timeout_s, stream=self.stream, headers=headers,
            )
        except (nats.errors.Error, OSError, TimeoutError) as e:
            raise self._error(e, event) from e
        if ack.duplicate:
            log.debug("sink.duplicate", sink=self.name, event_id=event.id, call_id=event.subject, seq=ack.seq)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):  # broken already: nothing to release
                await asyncio.wait_for(nc.close(), self._options.timeout_s)

    async def _dial(self) -> Client:
        """Connects; nats-py retries an unreachable server forever, so the wait is bounded here."""
        try:
            return await asyncio.wait_for(
                nats.connect(
                    servers=[self._url], connect_timeout=max(1, round(self._options.timeout_s)),
                    allow_reconnect=True, max_reconnect_attempts=-1,
                    reconnect_time_wait=self._options.reconnect_wait_s,
                    error_cb=self._on_error, disconnected_cb=self._on_disconnected, reconnected_cb=self._on_reconnected,
                ),
                self._options.timeout_s,
            )
        except TimeoutError as e:
            raise transient(self.name, None, f"nats unreachable (no connection in {self._options.timeout_s}s)") from e
        except (nats.errors.Error, OSError) as e:
            raise self._error(e, None) from e

    async def _ensure_stream(self) -> None:
        assert self._js is not None
        try:
            try:
                await self._js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                config = StreamConfig(name=self.stream, subjects=[f"{self.subject}.>"], duplicate_window=self._window)
                await self._js.add_stream(config)
                log.info("sink.stream_created", sink=self.name, stream=self.stream, subjects=f"{self.subject}.>")
        except (nats.errors.Error, OSError, TimeoutError) as e:
            raise self._error(e, None) from e
        self._stream_ready = True

    def _error(self, e: BaseException, event: CloudEvent | None) -> CallError:
        if isinstance(e, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
            self._stream_ready = False  # deleted behind our back? look it up (and create it) again
            return transient(self.name, event, "no stream answered for the subject")
        if isinstance(e, nats.js.errors.APIError) and e.code == 400:
            return permanent(self.name, event, f"jetstream refused the message ({e.description})", status=400)
        if isinstance(e, nats.js.errors.APIError):
            return transient(self.name, event, f"jetstream error ({e.code})", status=e.code)
        if isinstance(e, TimeoutError):
            return transient(self.name, event, "no ack in time")
        return transient(self.name, event, f"nats unreachable ({type(e).__name__})")

    async def _on_error(self, e: Exception) -> None:
        """nats-py reports every failed (re)connect attempt: one warning per outage, the rest at debug."""
        quiet = self._nc is None or self._nc.is_reconnecting  # dialing (the caller reports) or retrying
        report = log.debug if quiet else log.warning
        report("sink.connection_error", sink=self.name, server=redact(self._url), error=type(e).__name__)

    async def _on_disconnected(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            log.warning("sink.disconnected", sink=self.name, server=redact(self._url))

    async def _on_reconnected(self) -> None:
        log.info("sink.reconnected", sink=self.name, server=redact(self._url))


def create(url: str, *, name: str, secret: str | None, options: SinkOptions) -> NatsSink:
    """The factory `workers.deliver.sinks.base.build_sink` calls for nats:// (no secret used)."""
    return NatsSink(url, name=name, options=options)
