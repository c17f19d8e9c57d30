"""Redaction per destination, seen from the consumer's side: every rule on every kind of destination (Redis Stream,
RabbitMQ, NATS JetStream, signed webhook, PostgreSQL), checked in what the consumer reads back, not in our output;
the routing file's `redact:` checked at load; and, end to end through the worker, one destination redacted while
another gets the same events (same ids) whole, with the call's record keeping the event as built."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contract import events as ev
from contract.privacy import Redaction, RedactKey, key_id
from contract.record import decode_summary, summary_key
from tests.helpers.event_examples import real_events
from tests.helpers.sinks import HARNESSES, Harness, WebhookReceiver
from tests.pipeline import routed
from workers.deliver.route import Destination, RouteError, parse_destinations
from workers.deliver.sinks import build_sink, idempotency_key
from workers.privacy.forming import FormedSink

SECRET = "s" * 24
NUMBERS = ("4302287001", "33170363950")  # both parties of the example calls, as digits
VARIANTS = {
    "mask-drop-drop": Redaction(numbers="mask", transcript="drop", recording_url="drop"),
    "hash-redact-keep": Redaction(numbers="hash", transcript="redact"),
}


class _Routing:
    def __init__(self, destination: Destination) -> None:
        self.destinations = (destination,)


def examples() -> list[ev.CloudEvent]:
    events = [event for _, event in real_events()]
    transcribed = next(e for e in events if isinstance(e, ev.CallTranscribedEvent))
    turn = transcribed.data.turns[0]
    said = ev.Turn(speaker=turn.speaker, role=turn.role, start_ms=0, end_ms=1, sentiment=None,
                   text="my card is 4111 1111 1111 1111 and I am at jane@example.com")
    data = msgspec.structs.replace(transcribed.data, turns=(*transcribed.data.turns, said))
    return [msgspec.structs.replace(e, data=data) if e is transcribed else e for e in events]


async def consumer_copy(h: Harness, rules: Redaction) -> list[dict[str, Any]]:
    """Publishes the examples through the real sink of `h`, formed by `rules`; what its consumer reads, as JSON."""
    events = examples()
    destination = Destination(name=h.kind, url=h.url(), secret=h.secret, redact=rules)
    sink = FormedSink(build_sink(h.url(), name=h.kind, secret=h.secret, options=h.options()), _Routing(destination),
                      RedactKey(SECRET))
    await sink.connect()
    try:
        for event in events:
            await sink.publish(event, idempotency_key=idempotency_key(event, h.kind))
    finally:
        await sink.close()
    got = await h.received(len(events))
    assert sorted(r.event_id for r in got) == sorted(e.id for e in events)  # ids unchanged by redaction
    return [json.loads(r.body) for r in got]


async def postgres_rows(h: Harness) -> str:
    """Every row of the destination's call and transcript tables, as text: what a SQL consumer reads."""
    conn = h.conn  # type: ignore[attr-defined]
    rows = [*await conn.fetch(f"SELECT * FROM {h.schema}.calls"),  # type: ignore[attr-defined]
            *await conn.fetch(f"SELECT * FROM {h.schema}.call_transcripts")]  # type: ignore[attr-defined]
    return " ".join(str(dict(r)) for r in rows)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("kind", sorted(HARNESSES))
async def test_each_rule_reaches_the_consumers_copy(kind: str, variant: str) -> None:
    """What the consumer of each destination kind receives carries no number in clear (masked: country code and
    last two digits; hashed: `hmac:<key id>:<hex>`), no turns or a scrubbed text, no recording link where dropped,
    and `data.redacted` naming the rules; event ids are those of the events as built."""
    rules = VARIANTS[variant]
    h = HARNESSES[kind]()
    await h.setup()
    try:
        copies = await consumer_copy(h, rules)
        text = json.dumps(copies) + (await postgres_rows(h) if kind == "postgres" else "")
    finally:
        await h.cleanup()
    assert not [n for n in NUMBERS if n in text]
    assert "4111 1111 1111 1111" not in text and "jane@example.com" not in text
    for body in copies:
        data = body["data"]
        assert data["redacted"] == list(rules.applied)
        number = data["from"]["number"]
        if rules.numbers == "mask":
            assert number.startswith("+1") and number.endswith("01") and "*" in number
        else:
            assert number.startswith(f"hmac:{key_id(SECRET)}:")
        if body["type"] == ev.COMPLETED and body["id"] == examples()[0].id:  # the example with a recording link
            assert (data["recording_url"] is None) == (rules.recording_url == "drop")
        if body["type"] == ev.TRANSCRIBED:
            if rules.transcript == "drop":
                assert data["turns"] == [] and data["summary"] is None and data["speakers"]
            else:
                assert data["turns"][-1]["text"] == "my card is [card] and I am at [email]"


def test_the_routing_file_reads_redact_and_names_its_line() -> None:
    """`redact:` is checked at load like every other field: unknown fields and values name their line, and
    `numbers: hash` without REDACT_KEY is refused there, not at the first delivery."""
    base = "destinations:\n  - name: crm\n    url: redis://127.0.0.1:6379/0?stream=s\n"
    loaded = parse_destinations(base + "    redact: {numbers: hash, transcript: drop}\n", {})
    assert loaded[0].redact == Redaction(numbers="hash", transcript="drop")
    assert parse_destinations(base, {})[0].redact == Redaction()
    with pytest.raises(RouteError, match=r'sinks.yaml:5: destination "crm": redact: numbers: "blur" is not one'):
        parse_destinations(base + "    redact:\n      numbers: blur\n", {})
    with pytest.raises(RouteError, match=r'sinks.yaml:5: .*unknown field "transcripts" \(did you mean "transcript"'):
        parse_destinations(base + "    redact:\n      transcripts: drop\n", {})
    with pytest.raises(RouteError, match=r"sinks.yaml:4: .*numbers: hash needs REDACT_KEY"):
        parse_destinations(base + "    redact: {numbers: hash}\n", {}, hash_key=False)


async def test_one_destination_redacted_the_other_whole_through_the_worker(tmp_path: Path) -> None:
    """Through the real worker: the webhook destination with `redact:` gets masked numbers and no link, the stream
    destination the same events whole, with the same ids; the call's summary keeps the numbers as built."""
    receiver = WebhookReceiver()
    crm = "    redact: {numbers: mask, recording_url: drop}\n"
    async with routed(tmp_path, receiver, crm, REDACT_KEY=uuid.uuid4().hex) as p:
        calls, _ = await p.place_and_send(2)
        await p.run_worker()
        whole = {e.id: e for e in await p.events()}
        sent = [ev.decode_event(r.body) for r in receiver.received]
        assert sent and {e.id for e in sent} <= set(whole)
        for event in sent:
            original = whole[event.id]
            assert isinstance(event.data, ev.CallEssentials) and isinstance(original.data, ev.CallEssentials)
            assert event.data.redacted == ("numbers:mask", "recording_url:drop")
            assert original.data.redacted is msgspec.UNSET
            assert event.data.from_.number != original.data.from_.number
            assert event.data.from_.number and "*" in event.data.from_.number
        for call in calls:
            raw = await p.redis.get(summary_key(p.settings.key_prefix, call.call_id))
            assert raw is not None and "*" not in decode_summary(raw).from_number
