"""The AsyncAPI document: committed copy equals the generated one, valid AsyncAPI 3.0, true to the sinks.

Validation uses the official AsyncAPI 3.0.0 JSON Schema, vendored in tests/vendor/asyncapi/ (Apache-2.0,
from the AsyncAPI Initiative's `@asyncapi/specs` 6.11.1, file `schemas/3.0.0-without-$id.json`), with the
`jsonschema` package the suite already uses: no PyPI package ships the 3.0 schema maintained.
The document's message and header schemas are then checked against what the real sinks publish.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
import referencing
import yaml
from referencing.jsonschema import DRAFT7, DRAFT202012

from contract import asyncapi, ops
from contract.events import SCHEMA_FILE, CloudEvent, data_schema, encode_event
from tests.helpers.event_examples import real_events
from tests.helpers.sinks import HARNESSES, Harness
from workers.deliver.sinks import idempotency_key, open_sink

ROOT = Path(__file__).resolve().parents[1]
VENDORED = Path(__file__).parent / "vendor" / "asyncapi" / "asyncapi-3.0.0.schema.json"
EVENT_TYPES = {"wavix.call.completed", "wavix.call.transcribed", "wavix.call.transcription_unavailable",
               "wavix.call.erased", *ops.OPS_TYPES}


@cache
def asyncapi_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(VENDORED.read_text(encoding="utf-8")))


def committed() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / asyncapi.ASYNCAPI_FILE).read_text(encoding="utf-8"))
    return loaded


def schema_validator(schema_id: str) -> jsonschema.Draft7Validator:
    """A validator for `#/components/schemas/<schema_id>` whose relative refs reach the committed data schema."""
    base = "https://wavix-events.test/"  # a hierarchical base, so the document's relative refs resolve
    data_uri = base + SCHEMA_FILE
    document_uri = base + asyncapi.ASYNCAPI_FILE
    ops_uri = base + ops.OPS_SCHEMA_FILE
    registry: referencing.Registry[Any] = referencing.Registry().with_resources([
        (data_uri, DRAFT202012.create_resource({**data_schema(), "$id": data_uri})),
        (ops_uri, DRAFT202012.create_resource({**ops.data_schema(), "$id": ops_uri})),
        (document_uri, DRAFT7.create_resource({**committed(), "$id": document_uri})),
    ])
    schema = {"$ref": f"{document_uri}#/components/schemas/{schema_id}"}
    return jsonschema.Draft7Validator(schema, registry=registry, format_checker=jsonschema.FormatChecker())


def test_committed_document_equals_the_generated_one() -> None:
    """docs/asyncapi.yaml cannot drift from the code: `python -m contract.asyncapi > docs/asyncapi.yaml` rewrites it."""
    text = (ROOT / asyncapi.ASYNCAPI_FILE).read_text(encoding="utf-8")
    assert text == asyncapi.document_yaml(), "regenerate: python -m contract.asyncapi > docs/asyncapi.yaml"


def test_document_is_valid_asyncapi_3() -> None:
    """The document validates against the official AsyncAPI 3.0.0 schema, which does refuse a broken copy."""
    document = committed()
    assert document["asyncapi"] == "3.0.0"
    errors = [f"{e.json_path}: {e.message[:200]}" for e in asyncapi_validator().iter_errors(document)]
    assert errors == []
    broken = copy.deepcopy(document)
    broken["operations"]["sendRedis"]["action"] = "publish"  # AsyncAPI 2's word: not valid in 3.0
    assert not asyncapi_validator().is_valid(broken)


def test_every_channel_carries_every_event_type() -> None:
    """Four channels (Redis, RabbitMQ, NATS, webhook), each with a message per event type and a send operation."""
    document = committed()
    channels = document["channels"]
    assert set(channels) == {"redisStream", "rabbitmqExchange", "natsSubject", "webhook"}
    for channel_id, channel in channels.items():
        assert set(channel["messages"]) == EVENT_TYPES, channel_id
        [operation] = [o for o in document["operations"].values() if o["channel"]["$ref"].endswith(f"/{channel_id}")]
        assert operation["action"] == "send" and len(operation["messages"]) == len(EVENT_TYPES)
    assert channels["rabbitmqExchange"]["bindings"]["amqp"]["exchange"]["type"] == "topic"
    assert channels["natsSubject"]["address"] == "{subject}.{eventType}"
    assert {m["name"] for m in document["components"]["messages"].values()} == EVENT_TYPES


def test_every_ref_resolves_and_data_points_into_the_committed_schema() -> None:
    """Internal `$ref`s resolve; the payloads' `data` refs name the same definitions as the events' `dataschema`."""
    document = committed()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if isinstance(node.get("$ref"), str) else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    schema = json.loads((ROOT / SCHEMA_FILE).read_text(encoding="utf-8"))
    ops_schema = json.loads((ROOT / ops.OPS_SCHEMA_FILE).read_text(encoding="utf-8"))
    external = [r for r in refs if not r.startswith("#")]
    for ref in refs:
        target: Any = document if ref.startswith("#") else ops_schema if "wavix.ops" in ref else schema
        for part in ref.partition("#")[2].strip("/").split("/"):
            target = target[part]
    assert sorted({r.rpartition("/")[2] for r in external}) == sorted([*(schema["$defs"][n]["title"] for n in (
        "CallCompleted", "CallTranscribed", "TranscriptionUnavailable", "CallErased")), "PipelineIncident"])
    assert all(r.startswith(("schema/wavix.call.v1.json#/$defs/", "schema/wavix.ops.v1.json#/$defs/PipelineIncident"))
               for r in external)


@pytest.mark.parametrize("index", range(len(real_events())))
def test_real_events_validate_against_their_message_payload(index: int) -> None:
    """A real event (with and without `traceparent`) is valid under its payload schema, data included."""
    _, event = real_events()[index]
    validator = schema_validator(type(event).__name__)
    body = json.loads(encode_event(event))
    assert [e.message for e in validator.iter_errors(body)] == []
    traced = msgspec.structs.replace(event, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert validator.is_valid(json.loads(encode_event(traced)))
    assert not validator.is_valid({**body, "data": {**body["data"], "call_id": 7}})  # data really is checked
    assert not validator.is_valid({k: v for k, v in body.items() if k != "subject"})


async def published_headers(h: Harness, events: list[CloudEvent]) -> list[dict[str, Any]]:
    """Publishes `events` through the real sink of `h` and returns what each carried beside its body."""
    sink = await open_sink(h.url(), name=h.kind, secret=h.secret, options=h.options())
    try:
        for event in events:
            await sink.publish(event, idempotency_key=idempotency_key(event, h.kind))
    finally:
        await sink.close()
    await h.received(len(events))
    if h.kind == "redis":
        entries = await h.redis.xrange(h.stream)  # type: ignore[attr-defined]
        return [{k.decode(): v.decode() for k, v in fields.items() if k != b"event"} for _, fields in entries]
    return [dict(r.attributes["headers"]) for r in await h.read()]


# A PostgreSQL destination sends no message beside its body: it writes rows (docs/events.md, "Calls in PostgreSQL").
@pytest.mark.parametrize("kind", sorted(set(HARNESSES) - {"postgres"}))
async def test_headers_the_sinks_send_match_the_document(kind: str) -> None:
    """What each real sink adds (Redis entry fields, AMQP, NATS, webhook headers) validates against the document."""
    schema_id = {"redis": "RedisStreamFields", "rabbitmq": "AmqpHeaders", "nats": "NatsHeaders",
                 "webhook": "WebhookHeaders"}[kind]
    h = HARNESSES[kind]()
    await h.setup()
    try:
        got = await published_headers(h, [event for _, event in real_events()])
    finally:
        await h.cleanup()
    validator = schema_validator(schema_id)
    assert len(got) == len(real_events())
    for headers in got:
        assert [e.message for e in validator.iter_errors(headers)] == []
    documented = committed()["components"]["schemas"][schema_id]["properties"]
    assert set(got[0]) >= set(committed()["components"]["schemas"][schema_id]["required"])
    assert kind == "webhook" or set(got[0]) <= set(documented)  # HTTP adds its own headers (host, length)
