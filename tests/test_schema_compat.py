"""The data schema never breaks its consumers: compatible with the last release, and documented by real events.

The released copy (docs/schema/released/) is the schema of the last landed release (20b97b9). The rules
are contract/compat.py's and docs/events.md's; the five pattern changes below are the one recorded exception
(see "Since the last release" in docs/events.md).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from contract import events as ev
from contract.compat import breaking_changes
from tests.helpers.event_examples import EVENTS_DOC, erased_example, examples_block, real_events, with_examples

ROOT = Path(__file__).resolve().parents[1]
MAJOR = ev.SCHEMA.rpartition("/")[2]
RELEASED = ROOT / "docs" / "schema" / "released" / f"wavix.call.v{MAJOR}.json"
_PATTERN = "constraint pattern changed: None -> '^[0-9]+(\\\\.[0-9]+)?$'"
ACCEPTED_SINCE_RELEASE = sorted(f"{field}: {_PATTERN}" for field in (
    "CallCompleted.charge", "CallCompleted.duration_s", "CallCompleted.forward_fee", "CallCompleted.per_minute",
    "CallTranscribed.score",
))


def released() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(RELEASED.read_text(encoding="utf-8"))
    return loaded


def test_current_schema_is_compatible_with_the_release_of_its_major_version() -> None:
    """Only the recorded pattern changes differ in a breaking way; anything else (or a stale waiver) fails."""
    assert released()["$id"] == ev.SCHEMA_ID, "the released copy must be of the current major version"
    assert sorted(breaking_changes(released(), ev.data_schema())) == ACCEPTED_SINCE_RELEASE


def test_removing_a_field_from_a_data_struct_fails_the_check() -> None:
    """A CallCompleted Struct without `charge` (what deleting the field does) is reported as a removal."""
    fields = [(f.name, f.type, f.default) if f.default is not msgspec.NODEFAULT else (f.name, f.type)
              for f in msgspec.structs.fields(ev.CallCompleted) if f.name != "charge"]
    without = msgspec.defstruct("CallCompleted", fields, kw_only=True, rename={"from_": "from"})
    others = [t for t in ev.DATA_TYPES if t is not ev.CallCompleted]
    refs, defs = msgspec.json.schema_components([without, *others], ref_template="#/$defs/{name}")
    current = {**ev.data_schema(), "anyOf": list(refs), "$defs": defs}
    assert breaking_changes(ev.data_schema(), ev.data_schema()) == []
    assert breaking_changes(ev.data_schema(), current) == ["CallCompleted.charge: property removed"]


def _completed(schema: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = schema["$defs"]["CallCompleted"]
    return node


def _edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    schema = copy.deepcopy(ev.data_schema())
    change(schema)
    return schema


def _require(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda s: _completed(s)["required"].append(name)


BREAKING = {
    "removed": (lambda s: _completed(s)["properties"].pop("destination"),
                "CallCompleted.destination: property removed"),
    "newly required": (_require("found_by"), "CallCompleted.found_by: property now required"),
    "new and required": (lambda s: (_completed(s)["properties"].update(tag={"type": "string"}), _require("tag")(s)),
                         "CallCompleted.tag: new property is required (give it a default)"),
    "narrowed": (lambda s: _completed(s)["properties"].update(destination={"type": "string"}),
                 "CallCompleted.destination: type narrowed: no longer allows null"),
    "widened": (lambda s: _completed(s)["properties"].update(call_id={"type": ["string", "null"]}),
                "CallCompleted.call_id: type widened: now allows null"),
    "enum value removed": (lambda s: _completed(s)["properties"]["found_by"]["enum"].remove("backfill"),
                           "CallCompleted.found_by: enum value(s) removed: 'backfill'"),
    "const changed": (lambda s: _completed(s)["properties"]["currency"].update(enum=["USD", "EUR"]),
                      "CallCompleted.currency: const changed: 'USD' -> 'USD', 'EUR'"),
    "definition removed": (lambda s: s["$defs"].pop("Anomaly"), "Anomaly: definition removed"),
}
COMPATIBLE = {
    "optional property added": lambda s: _completed(s)["properties"].update(region={"type": "string", "default": ""}),
    "enum value added": lambda s: _completed(s)["properties"]["found_by"]["enum"].append("import"),
    "description changed": lambda s: _completed(s).update(description="another text"),
    "data type added": lambda s: (s["$defs"].update(CallMissed={"type": "object"}),
                                  s["anyOf"].append({"$ref": "#/$defs/CallMissed"})),
}


@pytest.mark.parametrize("name", sorted(BREAKING))
def test_each_breaking_change_is_reported(name: str) -> None:
    """Removal, new requirement, narrowing, widening, a lost enum value, a changed constant: each is reported."""
    change, expected = BREAKING[name]
    assert breaking_changes(ev.data_schema(), _edit(change)) == [expected]


@pytest.mark.parametrize("name", sorted(COMPATIBLE))
def test_compatible_changes_pass(name: str) -> None:
    """New optional properties, new values of open enums, new data types and new wording are compatible."""
    assert breaking_changes(ev.data_schema(), _edit(COMPATIBLE[name])) == []


def test_events_doc_examples_are_the_generated_ones() -> None:
    """docs/events.md shows today's real events: regenerate with `python -m tests.helpers.event_examples`."""
    text = EVENTS_DOC.read_text(encoding="utf-8")
    assert with_examples(text) == text, "regenerate: .venv/bin/python -m tests.helpers.event_examples"
    assert examples_block() in text


def test_every_event_type_has_a_valid_example() -> None:
    """Each event type has an example in docs/events.md, and each example's data is valid where `dataschema` says."""
    examples = [*real_events(), erased_example()]
    assert {event.type for _, event in examples} == {ev.COMPLETED, ev.TRANSCRIBED, ev.UNAVAILABLE, ev.ERASED}
    defs = ev.data_schema()["$defs"]
    for _, event in examples:
        body = json.loads(ev.encode_event(event))
        assert json.dumps(body, indent=2) in EVENTS_DOC.read_text(encoding="utf-8")
        name = body["dataschema"].rpartition("/")[2]
        jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": defs}).validate(body["data"])
