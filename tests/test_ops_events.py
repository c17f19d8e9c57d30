"""Ops events, the pure part: their types, ids and schema, and which destinations a routing file sends them to."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from contract import events as ev
from contract import ops
from tests.helpers.event_examples import EVENTS_DOC, ops_examples
from tests.helpers.sinks import make_event
from workers.alert.ops import event_of
from workers.deliver.route import parse_destinations, route

ROOT = Path(__file__).resolve().parents[1]
OPENED = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def incident(kind: str = "destination_failing", resolved: bool = False) -> ops.PipelineIncident:
    return ops.PipelineIncident(
        incident_id=f"{kind}:crm:1782907200000", kind=kind, destination="crm", opened_at=OPENED,  # type: ignore[arg-type]
        resolved_at=datetime(2026, 7, 1, 12, 30, tzinfo=UTC) if resolved else None,
        title="Destination crm failing for 11 min", detail="7 failed tries in a row; last error: http_503")


@pytest.mark.parametrize("kind", ops.KINDS)
def test_each_incident_kind_has_an_opened_and_a_resolved_type_that_decode_as_themselves(kind: str) -> None:
    """`wavix.ops.<kind>.opened` and `.resolved` exist for every kind, carry the incident id as subject and
    `wavix.ops/1` as schema, and decode back to the same event."""
    for resolved, phase in ((False, "opened"), (True, "resolved")):
        event = event_of(incident(kind, resolved))
        assert event.type == f"wavix.ops.{kind}.{phase}"
        assert (event.subject, event.schema) == (f"{kind}:crm:1782907200000", "wavix.ops/1")
        assert event.time == (event.data.resolved_at or OPENED)  # type: ignore[union-attr]
        assert ev.decode_event(ev.encode_event(event)) == event


def test_an_incidents_event_ids_follow_from_its_id_and_phase_alone() -> None:
    """The same incident and phase make the same id however often it is formed (so its deliveries' idempotency
    keys repeat); its opened and resolved events, and other incidents, have other ids."""
    opened, again = event_of(incident()), event_of(incident())
    resolved = event_of(incident(resolved=True))
    assert opened.id == again.id == ev.event_id("destination_failing:crm:1782907200000",
                                                "wavix.ops.destination_failing.opened")
    assert ev.encode_event(opened) == ev.encode_event(again)
    assert len({opened.id, resolved.id, event_of(incident("dead_letters")).id}) == 3


def test_the_committed_ops_schema_is_the_generated_one_and_the_data_is_valid_under_it() -> None:
    """docs/schema/wavix.ops.v1.json cannot drift from contract/ops.py; an event's data validates where its
    `dataschema` points, and a data without `kind` does not."""
    committed = (ROOT / ops.OPS_SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == ops.schema_json(), f"regenerate: python -m contract.ops > {ops.OPS_SCHEMA_FILE}"
    body = json.loads(ev.encode_event(event_of(incident(resolved=True))))
    assert body["dataschema"] == "urn:wavix-events:schema:wavix.ops:1#/$defs/PipelineIncident"
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/PipelineIncident", **ops.data_schema()})
    validator.validate(body["data"])
    assert not validator.is_valid({k: v for k, v in body["data"].items() if k != "kind"})


ROUTING = """\
destinations:
  - name: calls
    url: redis://h/0?stream=calls
  - name: everything
    url: redis://h/0?stream=all
    filter: {types: ["*"]}
  - name: ops
    url: redis://h/0?stream=ops
    filter: {types: [wavix.ops.*]}
  - name: failing_only
    url: redis://h/0?stream=f
    filter: {types: ["wavix.ops.destination_failing.*"], accounts: [alpha]}
  - name: answered
    url: redis://h/0?stream=a
    filter: {types: [wavix.call.completed, "wavix.ops.*.opened"], disposition: [answered]}
"""


def test_ops_events_go_only_where_types_name_them() -> None:
    """A destination without `types` keeps getting call events (erased included) and no ops event; `["*"]`,
    `wavix.ops.*` and narrower globs subscribe, and the filter's call fields and accounts do not apply to them."""
    destinations = parse_destinations(ROUTING, {})

    def names(event: ev.CloudEvent) -> list[str]:
        return [d.name for d in route(event, destinations)]

    assert names(make_event(disposition="answered")) == ["calls", "everything", "answered"]
    erased = ev.CallErasedEvent(id="e", subject="c", time=OPENED, dataschema=ev.dataschema_for(ev.CallErased),
                                data=ev.CallErased(call_id="c", erased_at=OPENED, event_ids=()))
    assert names(erased) == ["calls", "everything"]
    assert names(event_of(incident())) == ["everything", "ops", "failing_only", "answered"]
    assert names(event_of(incident(resolved=True))) == ["everything", "ops", "failing_only"]
    assert names(event_of(incident("wavix_auth"))) == ["everything", "ops", "answered"]


def test_a_misspelt_ops_type_is_refused_with_the_closest_one() -> None:
    """`types: [wavix.ops.destination_failing.open]` names no event: refused at load, naming `.opened`."""
    text = "destinations:\n  - name: o\n    url: redis://h/0?stream=o\n    filter: {types: [" \
           "wavix.ops.destination_failing.open]}\n"
    with pytest.raises(ValueError, match=r'sinks.yaml:4: .*did you mean "wavix.ops.destination_failing.opened"'):
        parse_destinations(text, {})


def test_docs_show_an_opened_and_a_resolved_ops_event_as_the_code_forms_them() -> None:
    """docs/events.md carries both ops examples exactly as `event_of` encodes them, and each is valid data."""
    text = EVENTS_DOC.read_text(encoding="utf-8")
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/PipelineIncident", **ops.data_schema()})
    examples = ops_examples()
    assert [event.type for _, event in examples] == ["wavix.ops.destination_failing.opened",
                                                      "wavix.ops.destination_failing.resolved"]
    for _, event in examples:
        body = json.loads(ev.encode_event(event))
        assert json.dumps(body, indent=2) in text
        validator.validate(body["data"])
