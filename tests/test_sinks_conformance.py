"""One conformance suite, run against every sink on real brokers on loopback (Redis, RabbitMQ, NATS
JetStream, PostgreSQL, and a local HTTP receiver that verifies Standard Webhooks signatures).

Each test gets its own stream/exchange/subject (a uuid) and removes it afterwards. A broker that does not
answer is a failure, never a skip. Transport-specific promises (AMQP properties, JetStream subject, webhook
status mapping, lazy imports) follow the shared suite.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from contract.events import CONTENT_TYPE, CloudEvent, decode_event
from tests.helpers.servers import free_port
from tests.helpers.sinks import HARNESSES, Harness, TcpProxy, WebhookReceiver, make_event
from workers.deliver.sinks import Sink, SinkError, SinkOptions, build_sink, idempotency_key, open_sink
from workers.deliver.sinks.webhook import sign, signing_key
from workers.retry import Permanent, Transient


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h = HARNESSES[request.param]()
    await h.setup()
    try:
        yield h
    finally:
        await h.cleanup()


async def open_for(h: Harness, port: int | None = None) -> Sink:
    return await open_sink(h.url(port), name=h.kind, secret=h.secret, options=h.options())


async def publish_until_accepted(sink: Sink, event: CloudEvent, key: str, within: float = 10.0) -> int:
    """What the job's retries do, compressed: publish again after each Transient. Returns the attempts."""
    deadline, attempts = time.monotonic() + within, 0
    while True:
        attempts += 1
        try:
            await sink.publish(event, idempotency_key=key)
            return attempts
        except Transient:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_publish_arrives_with_body_and_attributes(harness: Harness) -> None:
    """A published event arrives once, its body decodes to the same event, and it carries id, type and key."""
    sink = await open_for(harness)
    event = make_event()
    key = idempotency_key(event, harness.kind)
    try:
        await sink.publish(event, idempotency_key=key)
    finally:
        await sink.close()
    [got] = await harness.received(1)
    assert decode_event(got.body) == event
    assert (got.event_id, got.type) == (event.id, event.type)
    assert got.key in (key, None) and (harness.kind in ("redis", "postgres") or got.key == key)  # they keep ids


async def test_duplicate_publish_collapses_or_keeps_the_same_ids(harness: Harness) -> None:
    """A repeat with the same idempotency key is dropped (Redis, JetStream) or carries the same ids."""
    sink = await open_for(harness)
    event, other = make_event(), make_event()
    key = idempotency_key(event, harness.kind)
    try:
        for _ in range(2):
            await sink.publish(event, idempotency_key=key)
        await sink.publish(other, idempotency_key=idempotency_key(other, harness.kind))
    finally:
        await sink.close()
    got = await harness.received(2 if harness.dedups else 3)
    copies = [r for r in got if r.event_id == event.id]
    assert [r.event_id for r in got if r.event_id != event.id] == [other.id]
    assert len(copies) == (1 if harness.dedups else 2)
    assert {(r.event_id, r.key) for r in copies} <= {(event.id, key), (event.id, None)}


async def test_one_sink_serves_concurrent_publishers(harness: Harness) -> None:
    """A worker shares one sink among its jobs: 40 publishes at once, from a cold start, all arrive once."""
    sink = build_sink(harness.url(), name=harness.kind, secret=harness.secret, options=harness.options())
    events = [make_event() for _ in range(40)]
    try:
        await asyncio.gather(*(sink.publish(e, idempotency_key=idempotency_key(e, harness.kind)) for e in events))
    finally:
        await sink.close()
    got = await harness.received(len(events))
    assert sorted(r.event_id for r in got) == sorted(e.id for e in events)


async def test_broker_down_then_up_loses_nothing(harness: Harness) -> None:
    """While the broker is unreachable publish raises Transient; after it is back the retry lands, once."""
    proxy = await TcpProxy("127.0.0.1", harness.upstream_port).start()
    sink = await open_for(harness, proxy.port)
    before, during = make_event(), make_event()
    try:
        await sink.publish(before, idempotency_key=idempotency_key(before, harness.kind))
        await proxy.cut()
        started = time.monotonic()
        with pytest.raises(Transient):
            await sink.publish(during, idempotency_key=idempotency_key(during, harness.kind))
        assert time.monotonic() - started < 5.0, "an outage must surface within the timeout, not hang"
        await proxy.restore()
        await publish_until_accepted(sink, during, idempotency_key(during, harness.kind))
    finally:
        await sink.close()
        await proxy.cut()
    got = await harness.received(2)
    ids = [r.event_id for r in got]
    assert set(ids) == {before.id, during.id}
    if harness.dedups:
        assert sorted(ids) == sorted([before.id, during.id]), "exactly once each"


async def test_permanent_failure_raises_permanent(harness: Harness) -> None:
    """A peer that refuses this message (400, WRONGTYPE, unroutable, too large) raises Permanent, not Transient."""
    sink = await open_for(harness)
    event = make_event()
    try:
        await harness.make_permanent()
        with pytest.raises(Permanent) as caught:
            await sink.publish(event, idempotency_key=idempotency_key(event, harness.kind))
    finally:
        await sink.close()
    assert not isinstance(caught.value, Transient)
    reason = caught.value.reason
    assert reason.startswith(f"{harness.kind}:") and "t0ken" not in reason and "guest" not in reason


async def test_unreachable_at_start_is_transient_and_close_is_safe(harness: Harness) -> None:
    """Nothing listening at the URL: connect/publish raise Transient (the job retries); close twice is fine."""
    sink = build_sink(harness.url(free_port()), name=harness.kind, secret=harness.secret, options=harness.options())
    event = make_event()
    with pytest.raises(Transient):
        await sink.connect()
        await sink.publish(event, idempotency_key=idempotency_key(event, harness.kind))
    await sink.close()
    await sink.close()


# --- Transport-specific promises ---


async def test_redis_mark_key_is_the_shared_publish_mark() -> None:
    """The Redis sink's mark is `{prefix}published:{idempotency_key}`, the key workers/publish.py also honours."""
    h = HARNESSES["redis"]()
    await h.setup()
    try:
        sink = await open_for(h)
        event = make_event()
        await sink.publish(event, idempotency_key=f"{event.id}:redis")
        await sink.close()
        assert await h.redis.exists(f"{h.options().key_prefix}published:{event.id}:redis") == 1  # type: ignore[attr-defined]
    finally:
        await h.cleanup()


async def test_rabbitmq_message_is_persistent_typed_and_carries_cloudevents_headers() -> None:
    """AMQP: persistent, routing key and `type` = event type, message_id = event id, ce headers, ce content type."""
    h = HARNESSES["rabbitmq"]()
    await h.setup()
    try:
        sink = await open_for(h)
        event = make_event()
        await sink.publish(event, idempotency_key="k-1")
        await sink.close()
        [got] = await h.received(1)
    finally:
        await h.cleanup()
    a = got.attributes
    assert (a["delivery_mode"], a["routing_key"], a["message_type"]) == (2, event.type, event.type)
    assert a["content_type"] == CONTENT_TYPE
    assert a["headers"]["cloudEvents_id"] == event.id and a["headers"]["cloudEvents_subject"] == event.subject
    assert a["headers"]["cloudEvents_time"] == msgspec.to_builtins(event.time)


async def test_nats_subject_is_prefix_plus_event_type() -> None:
    """JetStream: the message lands on `<subject>.<event type>` with `Nats-Msg-Id` = idempotency key."""
    h = HARNESSES["nats"]()
    await h.setup()
    try:
        sink = await open_for(h)
        event = make_event()
        await sink.publish(event, idempotency_key="k-2")
        await sink.close()
        [got] = await h.received(1)
    finally:
        await h.cleanup()
    assert got.attributes["subject"] == f"{h.subject}.{event.type}"  # type: ignore[attr-defined]
    assert got.attributes["headers"]["Nats-Msg-Id"] == "k-2"


@pytest.mark.parametrize(("status", "retry_after", "error", "delay"), [
    (429, "7", Transient, 7.0), (503, None, Transient, None), (408, None, Transient, None),
    (400, None, Permanent, None), (404, None, Permanent, None), (301, None, Permanent, None),
])
async def test_webhook_status_mapping(status: int, retry_after: str | None, error: type, delay: float | None) -> None:
    """Webhook answers: 408/429/5xx Transient with Retry-After as `retry_after`; 3xx and other 4xx Permanent."""
    receiver = await WebhookReceiver(status=status, retry_after=retry_after).start()
    sink = await open_sink(f"http://127.0.0.1:{receiver.port}/h", secret=receiver.secret, options=SinkOptions())
    try:
        with pytest.raises(error) as caught:
            await sink.publish(make_event(), idempotency_key="k-3")
    finally:
        await sink.close()
        await receiver.stop()
    assert caught.value.status == status and receiver.rejected == 0  # the signature was valid
    assert getattr(caught.value, "retry_after", None) == delay


async def test_webhook_signature_follows_the_spec_and_uses_a_shared_client() -> None:
    """`whsec_` secrets decode to the key; a plain secret is used as bytes; a shared client is not closed."""
    assert signing_key("whsec_" + "AAEC") == b"\x00\x01\x02" and signing_key("plain") == b"plain"
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="  # the Standard Webhooks reference example
    secret = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    async with httpx.AsyncClient() as shared:
        receiver = await WebhookReceiver(secret="plain-secret").start()
        sink = await open_sink(f"http://127.0.0.1:{receiver.port}/h", secret="plain-secret",
                               options=SinkOptions(http=shared))
        await sink.publish(make_event(), idempotency_key="k-4")
        await sink.close()
        assert not shared.is_closed and len(receiver.received) == 1
        await receiver.stop()


def test_unknown_scheme_or_missing_parameters_are_refused_before_any_io() -> None:
    """A URL naming no transport, or lacking stream/exchange/subject or a webhook secret, raises SinkError."""
    for url, secret in [("kafka://h:9092/x", None), ("redis://127.0.0.1:6379/0", None),
                        ("amqp://h/", None), ("nats://h:4222/?stream=S", None), ("https://h/x", None)]:
        with pytest.raises(SinkError):
            build_sink(url, name="x", secret=secret)


def test_transports_are_imported_only_when_used() -> None:
    """Importing the sinks package (and building a Redis sink) pulls in neither aio-pika nor nats-py."""
    code = ("import sys; from workers.deliver.sinks import build_sink; build_sink('redis://h/0?stream=s', name='r'); "
            "print(sorted(m for m in ('aio_pika', 'nats', 'httpx.x') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
