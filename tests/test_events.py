"""The published event contract: CloudEvents structured mode, stable ids, data that matches its schema."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from contract.events import (
    COMPLETED,
    SCHEMA,
    SCHEMA_FILE,
    TRANSCRIBED,
    UNAVAILABLE,
    CallCompletedEvent,
    CloudEvent,
    data_schema,
    decode_event,
    encode_event,
    event_id,
    schema_json,
)
from contract.wavix import decode_cdr, decode_transcript
from workers.enrich import CallHints, completed_event, transcribed_event, unavailable_event

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
HINTS = CallHints(direction="outbound")
CDR = decode_cdr(
    b'{"call_id": "call-1", "date": "2026-06-30T10:00:00.000Z", "from": 14302287001, "to": "+33170363950",'
    b' "disposition": "FAILED", "answered_by": "machine", "duration": "6", "charge": 0.01, "per_minute": "0.027",'
    b' "forward_fee": 0, "sip_trunk": 32882, "recording_url": "https://api.wavix.com/v1/recordings/r?appid=x"}'
)
TRANSCRIPT = decode_transcript(
    b'{"uuid": "tr-1", "status": "completed", "language": "en", "call_score": "3.8", "call_summary": "Hi.",'
    b' "turns": [{"type": "14302287001", "s": 0, "e": 1500, "text": "Hello", "sentiment": "neutral"},'
    b' {"phone_number": "33170363950", "s": 1500, "e": 2000, "text": "Hi"}]}'
)
REQUIRED = {"specversion", "id", "source", "type"}  # CloudEvents 1.0 required context attributes


def every_event(call: Any = CDR) -> list[CloudEvent]:
    return [
        completed_event(call, hints=HINTS, rules=frozenset({"failed", "machine"}), now=NOW),
        transcribed_event(call, TRANSCRIPT, hints=HINTS, now=NOW),
        unavailable_event(call, "not_provisioned", hints=HINTS, now=NOW),
    ]


def as_json(event: CloudEvent) -> dict[str, Any]:
    """The event as a consumer parses it; a float anywhere fails the parse (money is never a float)."""

    def no_float(text: str) -> Any:
        raise AssertionError(f"float {text} in an event")

    loaded: dict[str, Any] = json.loads(encode_event(event), parse_float=no_float)
    return loaded


def test_repeat_of_an_event_has_the_same_id() -> None:
    """Ids derive from call id and type alone: building the same event again (a retry) gives the same id."""
    later = datetime(2030, 1, 1, tzinfo=UTC)
    again = completed_event(CDR, hints=CallHints(), rules=frozenset(), now=later)
    assert again.id == every_event()[0].id == event_id("call-1", COMPLETED)


def test_each_event_type_and_call_has_its_own_id() -> None:
    """Different types of one call, and one type of different calls, never share an id; ids are UUIDs."""
    ids = [event.id for event in every_event()]
    other_call = completed_event(
        msgspec.structs.replace(CDR, call_id="call-2"), hints=HINTS, rules=frozenset(), now=NOW
    )
    assert len({*ids, other_call.id}) == 4
    assert all(uuid.UUID(i).version == 5 for i in ids)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_event_is_cloudevents_structured_json(index: int) -> None:
    """Each event is a CloudEvents 1.0 structured-mode JSON object with our attributes and lowercase names."""
    event = as_json(every_event()[index])
    assert event.keys() >= REQUIRED
    assert event["specversion"] == "1.0"
    assert event["type"] == [COMPLETED, TRANSCRIBED, UNAVAILABLE][index]
    assert (event["source"], event["subject"], event["schema"]) == ("wavix-events", "call-1", SCHEMA)
    assert event["datacontenttype"] == "application/json"
    assert re.fullmatch(r"[a-z][a-z0-9+.-]*:\S+", event["dataschema"])  # an absolute URI
    assert event["time"] == "2026-06-30T10:00:00Z"  # RFC 3339, UTC
    assert all(re.fullmatch(r"[a-z0-9]+", name) for name in event)  # CloudEvents attribute naming
    assert isinstance(event["data"], dict)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_data_validates_against_the_schema_its_event_names(index: int) -> None:
    """`dataschema` points into the generated schema document, and the event's data validates there."""
    event = as_json(every_event()[index])
    document = data_schema()
    uri, _, pointer = event["dataschema"].partition("#")
    assert uri == document["$id"]
    name = pointer.removeprefix("/$defs/")
    assert name in document["$defs"]
    jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": document["$defs"]}).validate(event["data"])
    jsonschema.Draft202012Validator(document).validate(event["data"])


def test_schema_rejects_money_as_a_number() -> None:
    """The schema holds consumers to the contract: a charge sent as a JSON number does not validate."""
    data = as_json(every_event()[0])["data"]
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/CallCompleted", "$defs": data_schema()["$defs"]})
    assert validator.is_valid(data)
    assert not validator.is_valid({**data, "charge": 0.01})


def test_completed_data_shape() -> None:
    """The completed data carries the normalised CDR: E.164 numbers, exact money as strings, clean link."""
    data = as_json(every_event()[0])["data"]
    assert data["from"] == {"number": "+14302287001", "country": "US"}
    assert (data["charge"], data["per_minute"], data["forward_fee"], data["duration_s"]) == ("0.01", "0.027", "0", "6")
    assert (data["disposition"], data["outcome"], data["alert_reasons"]) == (
        "failed",
        "answered_machine",
        ["failed", "machine"],
    )
    assert data["recording_url"] == "https://api.wavix.com/v1/recordings/r"
    assert data["date"] == "2026-06-30T10:00:00Z"


def test_event_round_trips_and_decodes_by_type() -> None:
    """`decode_event` gives back the same event, of the class its `type` names."""
    for event in every_event():
        decoded = decode_event(encode_event(event))
        assert decoded == event
        assert type(decoded) is type(event)
        assert decoded.type == as_json(event)["type"]
    assert isinstance(decode_event(encode_event(every_event()[0])), CallCompletedEvent)


def test_committed_schema_equals_the_generated_one() -> None:
    """docs/schema cannot drift: regenerate with `python -m contract.events > docs/schema/wavix.call.v1.json`."""
    committed = (ROOT / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema_json(), f"regenerate {SCHEMA_FILE}: python -m contract.events > {SCHEMA_FILE}"
