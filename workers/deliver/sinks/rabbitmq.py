"""RabbitMQ sink: a durable topic exchange, persistent messages, publisher confirms, `mandatory`.

`amqp://guest:guest@127.0.0.1:5672/?exchange=wavix.events`: the exchange (topic, durable) is declared at
connect. Each event is one persistent message (delivery_mode 2) with routing key = event type (bind
`wavix.call.#` or `wavix.call.completed`), `message_id` = event id, `type` = event type,
content type `application/cloudevents+json` (structured mode: the body is the whole event), and headers
`cloudEvents_<attribute>` (the CloudEvents AMQP binding's prefix) plus `idempotency-key`. A repeat of a
delivery carries the same `message_id` and `idempotency-key`: RabbitMQ does not drop duplicates, consumers do.

`publish` returns once the broker confirmed the message (publisher confirms: written to every queue it
was routed to). Reconnection is ours, not `connect_robust`'s: any connection or channel failure drops
the connection, raises Transient, and the next `publish` connects (and declares) again, so a retried job
finds a fresh connection and no background task replays anything behind our back.

Errors:
    refused/reset/closed connection, timeout, channel closed, broker nack      Transient
    unroutable (mandatory message returned: no queue bound for the type)       Permanent
    login refused, exchange exists with another type (precondition failed)     Permanent

Unroutable is Permanent on purpose: the broker accepted the message and answered that nobody listens for
this type. Retrying only changes that if someone changes the topology, and with the transient backoff that
would burn hours of retries before the same dead letter; a dead letter now is visible and replayable.
"""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractConnection, AbstractExchange
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from contract.events import CONTENT_TYPE, CloudEvent, encode_event
from workers.deliver.sinks.base import SinkOptions, ce_attributes, permanent, query_params, transient, without_params
from workers.retry import CallError

_OUR_PARAMS = frozenset({"exchange"})
_CONFIG_ERRORS = (aiormq.exceptions.AuthenticationError, aiormq.exceptions.ChannelPreconditionFailed,
                  aiormq.exceptions.IncompatibleProtocolError, aiormq.exceptions.ChannelAccessRefused)


class RabbitMqSink:
    """One exchange on one connection with one confirming channel."""

    def __init__(self, url: str, *, name: str, options: SinkOptions) -> None:
        self.name = name
        self.exchange_name = query_params(url)["exchange"]
        self._url = without_params(url, _OUR_PARAMS)
        self._timeout = options.timeout_s
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        await self._ready()

    async def publish(self, event: CloudEvent, *, idempotency_key: str) -> None:
        connection, exchange = await self._ready()
        message = aio_pika.Message(
            body=encode_event(event),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.id,
            type=event.type,
            timestamp=event.time,
            app_id=event.source,
            headers={**{f"cloudEvents_{k}": v for k, v in ce_attributes(event).items()},
                     "idempotency-key": idempotency_key},
        )
        try:
            await exchange.publish(message, routing_key=event.type, mandatory=True, timeout=self._timeout)
        except aiormq.exceptions.PublishError as e:
            raise permanent(self.name, event, f"unroutable: no queue bound for {event.type}") from e
        except aiormq.exceptions.DeliveryError as e:
            raise transient(self.name, event, "broker refused to confirm (nack)") from e
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as e:
            await self._drop(connection)
            raise self._error(e, event) from e

    async def close(self) -> None:
        if self._connection is not None:
            await self._drop(self._connection)

    async def _ready(self) -> tuple[AbstractConnection, AbstractExchange]:
        """The live connection and exchange, connecting (once, for all concurrent publishers) if needed."""
        async with self._lock:
            if self._connection is None or self._exchange is None or self._connection.is_closed:
                if self._connection is not None:
                    await self._drop(self._connection)
                self._connection, self._exchange = await self._dial()
            return self._connection, self._exchange

    async def _dial(self) -> tuple[AbstractConnection, AbstractExchange]:
        connection: AbstractConnection | None = None
        try:
            connection = await aio_pika.connect(self._url, timeout=self._timeout)
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, timeout=self._timeout
            )
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as e:
            if connection is not None:
                await _quietly_close(connection, self._timeout)
            raise self._error(e, None) from e
        return connection, exchange

    async def _drop(self, connection: AbstractConnection) -> None:
        """Forgets `connection` if it is still the current one (a concurrent publisher may have replaced it)."""
        if self._connection is connection:
            self._connection, self._exchange = None, None
        await _quietly_close(connection, self._timeout)

    def _error(self, e: BaseException, event: CloudEvent | None) -> CallError:
        if isinstance(e, _CONFIG_ERRORS):
            return permanent(self.name, event, f"broker refused the setup ({type(e).__name__})")
        if isinstance(e, TimeoutError):
            return transient(self.name, event, "broker timed out")
        return transient(self.name, event, f"broker unreachable ({type(e).__name__})")


async def _quietly_close(connection: AbstractConnection, timeout: float) -> None:
    if not connection.is_closed:
        with contextlib.suppress(TimeoutError, *CONNECTION_EXCEPTIONS):  # broken already: nothing to release
            await asyncio.wait_for(connection.close(), timeout)


def create(url: str, *, name: str, secret: str | None, options: SinkOptions) -> RabbitMqSink:
    """The factory `workers.deliver.sinks.base.build_sink` calls for amqp:// and amqps:// (no secret used)."""
    return RabbitMqSink(url, name=name, options=options)
