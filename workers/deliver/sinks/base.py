"""The sink interface, the URL-scheme registry, and the one way a sink reports a failed delivery.

Every destination is a `Sink`: `publish(event, idempotency_key=...)` and `close()` (plus `connect()`,
which `open_sink` calls, and `publish` calls again after a lost connection). The URL scheme picks the
module, imported only when a destination uses it, so a worker without RabbitMQ never imports aio-pika:

    redis:// rediss://   workers.deliver.sinks.redis_stream   ?stream=wavix:events&maxlen=100000
    redis+sentinel://    (the same, through Sentinels: contract/redisurl.py)
    amqp:// amqps://     workers.deliver.sinks.rabbitmq       ?exchange=wavix.events
    nats://              workers.deliver.sinks.nats           ?stream=WAVIX&subject=wavix.events[&duplicate_window=120]
    http:// https://     workers.deliver.sinks.webhook        (Standard Webhooks signatures; a secret is required)
    postgresql://        workers.deliver.sinks.postgres       ?schema=wavix  (tables, migrations: postgres_schema.py)

A sink never retries by itself. It turns every failure into `workers.retry.Transient` (broker down,
timeout, 429/5xx: try again later) or `workers.retry.Permanent` (the peer refused this message: retrying
cannot help), logs it once without a traceback, and raises it: the job's `RetryPolicy` decides the rest.
Error reasons name the sink and the failure, never a URL, a password or a secret.

The idempotency key is `event.id:destination` (`idempotency_key()`): stable across retries of one
delivery, distinct per destination. Sinks that can drop repeats do (Redis mark, JetStream `Nats-Msg-Id`);
the others carry it (AMQP header, `webhook-id`) with the event id so consumers can.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from contract import logs
from contract.events import CloudEvent
from workers.retry import CallError, Permanent, Transient

if TYPE_CHECKING:
    import httpx

log = logs.get("workers.deliver.sinks")

DAY = 86_400

# scheme -> (module, query parameters the URL must carry)
SCHEMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "redis": ("workers.deliver.sinks.redis_stream", ("stream",)),
    "rediss": ("workers.deliver.sinks.redis_stream", ("stream",)),
    "redis+sentinel": ("workers.deliver.sinks.redis_stream", ("stream",)),
    "rediss+sentinel": ("workers.deliver.sinks.redis_stream", ("stream",)),
    "amqp": ("workers.deliver.sinks.rabbitmq", ("exchange",)),
    "amqps": ("workers.deliver.sinks.rabbitmq", ("exchange",)),
    "nats": ("workers.deliver.sinks.nats", ("stream", "subject")),
    "http": ("workers.deliver.sinks.webhook", ()),
    "https": ("workers.deliver.sinks.webhook", ()),
    "postgresql": ("workers.deliver.sinks.postgres", ()),
    "postgres": ("workers.deliver.sinks.postgres", ()),
}
NEEDS_SECRET = frozenset({"http", "https"})
# scheme -> module whose `check_url(url)` checks what a URL of it says beyond host and parameters (no driver import)
DEEP_CHECKS = dict.fromkeys(("postgresql", "postgres"), "workers.deliver.sinks.postgres_schema")


@runtime_checkable
class Sink(Protocol):
    """A destination. `publish` returns once the peer has the event (confirmed, acked, 2xx) or raises."""

    name: str

    async def connect(self) -> None:
        """Opens connections and declares what the sink needs (exchange, stream); Transient if down."""
        ...

    async def publish(self, event: CloudEvent, *, idempotency_key: str) -> None:
        """Delivers `event`; a repeat with the same key publishes nothing or carries the same ids."""
        ...

    async def close(self) -> None:
        """Releases connections; safe to call twice, and after a failed connect."""
        ...


@dataclass(frozen=True)
class SinkOptions:
    """What every sink may need besides its URL. Defaults suit the worker; tests shorten the waits."""

    key_prefix: str = "wavix:"  # Redis publish marks: {key_prefix}published:{idempotency_key}
    mark_ttl_s: int = 7 * DAY  # how long a Redis publish mark remembers a delivery
    timeout_s: float = 10.0  # per connect and per publish (confirm, ack, response)
    reconnect_wait_s: float = 1.0  # NATS: pause between reconnect attempts
    http: httpx.AsyncClient | None = None  # webhooks: a shared client (else the sink builds its own)


class SinkError(ValueError):
    """A destination URL or secret that cannot work; raised at load or open, never during delivery."""


def idempotency_key(event: CloudEvent, destination: str) -> str:
    """`event.id:destination`: the same for every retry of one delivery, different per destination."""
    return f"{event.id}:{destination}"


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.lower()


def check_url(url: str, *, secret: str | None = None) -> None:
    """Raises SinkError when `url` names no known transport or lacks a parameter its transport needs."""
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise SinkError(f"not a URL ({e})") from e
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise SinkError(f"unknown scheme {scheme!r}: use one of {', '.join(sorted(SCHEMES))}")
    if not parts.hostname:
        raise SinkError(f"{scheme} URL has no host")
    params = query_params(url)
    missing = [p for p in SCHEMES[scheme][1] if not params.get(p)]
    if missing:
        raise SinkError(f"{scheme} URL needs ?{'&'.join(f'{p}=...' for p in missing)}")
    if scheme in NEEDS_SECRET and not secret:
        raise SinkError("a webhook destination needs a secret (Standard Webhooks signing)")
    if scheme in DEEP_CHECKS:
        importlib.import_module(DEEP_CHECKS[scheme]).check_url(url)


def query_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def without_params(url: str, names: frozenset[str]) -> str:
    """`url` minus our own query parameters, so the client library sees only its own."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


def redact(url: str) -> str:
    """scheme://host:port/path: no user, password or query (webhook URLs often carry tokens there)."""
    try:
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    except ValueError:
        return "[unparseable url]"


def build_sink(url: str, *, name: str, secret: str | None = None, options: SinkOptions | None = None) -> Sink:
    """The sink for `url`, not yet connected (no I/O): imports its transport module on first use."""
    check_url(url, secret=secret)
    module = importlib.import_module(SCHEMES[scheme_of(url)][0])
    sink: Sink = module.create(url, name=name, secret=secret, options=options or SinkOptions())
    return sink


async def open_sink(
    url: str, *, name: str | None = None, secret: str | None = None, options: SinkOptions | None = None
) -> Sink:
    """A connected sink for `url` (named after its scheme unless `name` says); Transient if the peer is down."""
    sink = build_sink(url, name=name or scheme_of(url), secret=secret, options=options)
    try:
        await sink.connect()
    except BaseException:
        await sink.close()
        raise
    return sink


async def connect_early(sinks: Iterable[Sink]) -> None:
    """At worker start, connects the sinks that prepare their destination on connecting (`connect_at_start`:
    PostgreSQL migrates its schema), so that happens now rather than on the first delivery. A failure is the
    sink's to log; the first delivery tries again."""
    early = [sink for sink in sinks if getattr(sink, "connect_at_start", False)]
    for sink, outcome in zip(early, await asyncio.gather(*(s.connect() for s in early), return_exceptions=True),
                             strict=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, CallError):
            log.error("sink.connect_failed", sink=sink.name, error=type(outcome).__name__, reason=str(outcome))


def ce_attributes(event: CloudEvent) -> dict[str, str]:
    """The CloudEvents context attributes as strings (for AMQP headers); `time` as in the JSON body."""
    attributes = {
        "specversion": event.specversion, "id": event.id, "source": event.source, "type": event.type,
        "subject": event.subject, "time": str(msgspec.to_builtins(event.time)),
        "datacontenttype": event.datacontenttype, "dataschema": event.dataschema, "schema": event.schema,
        "account": event.account,  # our extension, as every context attribute goes in the binding's headers
    }
    return attributes


def transient(
    sink: str, event: CloudEvent | None, reason: str, *, retry_after: float | None = None, status: int | None = None
) -> Transient:
    """A Transient for `sink`, logged once (warning, no traceback); the caller raises it `from` the cause."""
    error = Transient(f"{sink}: {reason}", retry_after, status=status)
    _log_failure(sink, event, error)
    return error


def permanent(sink: str, event: CloudEvent | None, reason: str, *, status: int | None = None) -> Permanent:
    """A Permanent for `sink`, logged once (warning, no traceback); the caller raises it `from` the cause."""
    error = Permanent(f"{sink}: {reason}", status=status)
    _log_failure(sink, event, error)
    return error


def _log_failure(sink: str, event: CloudEvent | None, error: CallError) -> None:
    log.warning(
        "sink.failed", sink=sink, event_id=event.id if event else None, call_id=event.subject if event else None,
        error=type(error).__name__, reason=error.reason, status=error.status,
    )
