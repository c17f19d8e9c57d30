"""Channel facts: where each kind of destination puts an event, and under which names, written once.

The sinks (`workers/deliver/sinks/`) publish by these rules, the AsyncAPI document (`contract/asyncapi.py`)
describes them, and the consumers in `examples/` read by them; `tests/test_examples.py` runs those
consumers against events published by the real sinks, so a sink that drifts from a fact here fails there.

    Redis Streams   XADD <stream> with fields `event` (the structured CloudEvent), `id`, `type`, `call_id`
    RabbitMQ        durable topic exchange <exchange>, routing key = event type, persistent messages,
                    headers `cloudEvents_<attribute>` (the CloudEvents AMQP binding) and `idempotency-key`
    NATS JetStream  subject `<subject>.<event type>` in stream <stream> (subjects `<subject>.>`),
                    headers `Nats-Msg-Id` (JetStream's duplicate window) and `Content-Type`
    Webhook         POST, Standard Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature`

Every body is the structured-mode CloudEvent (`contract.events.CONTENT_TYPE`). The names of streams,
exchanges and subjects are each destination's URL parameters (`workers/deliver/route.py`); the defaults
below are the ones the documentation and `contract/settings.py` use.
"""

from __future__ import annotations

from typing import Final

# --- Redis Streams ---
DEFAULT_STREAM: Final = "wavix:events"  # settings.events_stream
STREAM_EVENT_FIELD: Final = "event"  # the structured CloudEvent, JSON text
STREAM_ID_FIELD: Final = "id"  # the event id
STREAM_TYPE_FIELD: Final = "type"  # the event type
STREAM_CALL_ID_FIELD: Final = "call_id"  # the event's subject
STREAM_FIELDS: Final = (STREAM_EVENT_FIELD, STREAM_ID_FIELD, STREAM_TYPE_FIELD, STREAM_CALL_ID_FIELD)  # XADD order

# --- RabbitMQ (AMQP 0-9-1) ---
DEFAULT_EXCHANGE: Final = "wavix.events"
EXCHANGE_TYPE: Final = "topic"
AMQP_HEADER_PREFIX: Final = "cloudEvents_"  # CloudEvents AMQP binding: one header per context attribute
IDEMPOTENCY_HEADER: Final = "idempotency-key"  # `event.id:destination`, the same on every retry
AMQP_PERSISTENT: Final = 2  # delivery_mode


def amqp_routing_key(event_type: str) -> str:
    """The routing key of an event: its type, so `wavix.call.#` binds every call event."""
    return event_type


# --- NATS JetStream ---
DEFAULT_NATS_STREAM: Final = "WAVIX"
DEFAULT_NATS_SUBJECT: Final = "wavix.events"
NATS_MSG_ID_HEADER: Final = "Nats-Msg-Id"  # the idempotency key: JetStream drops repeats in its duplicate window
NATS_EXPECTED_STREAM_HEADER: Final = "Nats-Expected-Stream"


def nats_subject(prefix: str, event_type: str) -> str:
    """The subject an event is published on: `<prefix>.<event type>`."""
    return f"{prefix}.{event_type}"


def nats_stream_subjects(prefix: str) -> str:
    """The subjects a stream created for `prefix` captures."""
    return f"{prefix}.>"


# --- Webhooks (Standard Webhooks) ---
WEBHOOK_METHOD: Final = "POST"
WEBHOOK_ID_HEADER: Final = "webhook-id"  # the idempotency key `event.id:destination`
WEBHOOK_TIMESTAMP_HEADER: Final = "webhook-timestamp"  # unix seconds of this attempt
WEBHOOK_SIGNATURE_HEADER: Final = "webhook-signature"  # "v1,<base64 HMAC-SHA256>", space-separated list
WEBHOOK_SIGNATURE_VERSION: Final = "v1"
WEBHOOK_SECRET_PREFIX: Final = "whsec_"  # a secret of this form is base64 after the prefix
WEBHOOK_TOLERANCE_S: Final = 300  # how old a timestamp a receiver should accept (the spec's suggestion)
