"""Real events for the documentation and the consumer tests, built by the worker's own enrichment.

`real_events()` turns fixed Wavix CDRs and a transcript into events with `workers.enrich`, exactly as the
worker does: one per event type, plus a completed call whose disposition Wavix sent in a form we do not
know (outcome "unknown", the raw value in `anomalies`). `docs/events.md` shows them between the markers
below; `tests/test_schema_compat.py` regenerates that block and compares. After a change to the events:

    .venv/bin/python -m tests.helpers.event_examples   # rewrites the block in docs/events.md
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from contract.events import CloudEvent, encode_event
from contract.wavix import decode_cdr, decode_transcript
from workers.enrich import CallHints, completed_event, transcribed_event, unavailable_event

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DOC = ROOT / "docs" / "events.md"
BEGIN = "<!-- BEGIN GENERATED EXAMPLES: python -m tests.helpers.event_examples -->"
END = "<!-- END GENERATED EXAMPLES -->"

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
CDR = decode_cdr(
    b'{"call_id": "7d1f4c2e-5a0b-4f6e-9c3d-2b8a1e6f0c94", "date": "2026-06-30T10:00:00.000Z",'
    b' "from": "14302287001", "to": "33170363950", "disposition": "ANSWERED", "answered_by": "human",'
    b' "duration": "42", "charge": "0.0189", "per_minute": "0.027", "forward_fee": "0", "destination": "France",'
    b' "sip_trunk": "32882", "recording_url": "https://api.wavix.com/v1/recordings/r-1?appid=secret"}'
)
ODD_CDR = decode_cdr(
    b'{"call_id": "0c5b9e3a-8f41-4d2b-a7e6-51f0d9c8b2a7", "date": "2026-06-30T11:30:00.000Z",'
    b' "from": "14302287001", "to": "12025550143", "disposition": "ON HOLD", "duration": "0",'
    b' "charge": "NaN", "per_minute": "0.0045"}'
)
TRANSCRIPT = decode_transcript(
    b'{"uuid": "tr-5f2a", "status": "completed", "language": "en", "call_score": "4.2",'
    b' "call_summary": "The client confirmed the delivery date.",'
    b' "turns": [{"type": "14302287001", "s": 0, "e": 2100, "text": "Hello, this is Ann from Acme.",'
    b' "sentiment": "Neutral"}, {"phone_number": "33170363950", "s": 2300, "e": 4000,'
    b' "text": "Hi, yes, Thursday works.", "sentiment": "Positive"}]}'
)
OTHER_CDR = msgspec.structs.replace(CDR, call_id="3e9a7b51-c2d4-4f08-b6a1-8d5e0f7c9a23", to="12025550143")
HINTS = CallHints(direction="outbound", own_numbers=frozenset({"+14302287001"}))


def real_events() -> list[tuple[str, CloudEvent]]:
    """(caption, event): one per event type, then a completed call with an anomaly."""
    return [
        ("An answered outbound call", completed_event(CDR, hints=HINTS, rules=frozenset({"failed"}), now=NOW)),
        ("Its transcript", transcribed_event(CDR, TRANSCRIPT, hints=HINTS, now=NOW)),
        ("A call whose account has no transcription",
         unavailable_event(OTHER_CDR, "not_provisioned", hints=HINTS, now=NOW)),
        ("A CDR with values we could not publish as sent (outcome `unknown`, raw values in `anomalies`)",
         completed_event(ODD_CDR, hints=HINTS, rules=frozenset(), now=NOW)),
    ]


def erased_example() -> tuple[str, CloudEvent]:
    """(caption, event): `wavix.call.erased` of the first example's call, as `wavix-events forget` sends it."""
    from workers.privacy.erased import erased_event

    return ("The call erased at an operator's request (`wavix-events forget`): delete your copies of its events",
            erased_event("7d1f4c2e-5a0b-4f6e-9c3d-2b8a1e6f0c94", NOW))


def ops_examples() -> list[tuple[str, CloudEvent]]:
    """(caption, event): a destination's failing incident told when it opens and when it resolves."""
    from contract.ops import PipelineIncident
    from workers.alert.ops import event_of

    opened = PipelineIncident(
        incident_id="destination_failing:crm:1782907200000", kind="destination_failing", destination="crm",
        opened_at=NOW, resolved_at=None, title="Destination crm failing for 10 min",
        detail="37 failed tries in a row; last error: crm: http_503")
    resolved = msgspec.structs.replace(opened, resolved_at=datetime(2026, 7, 1, 12, 42, tzinfo=UTC))
    return [("Destination crm failing past PIPELINE_FAILING_AFTER", event_of(opened)),
            ("It answers again", event_of(resolved))]


def examples_block() -> str:
    """The markdown between (and including) the markers: a heading and a JSON block per event."""
    parts = [BEGIN, ""]
    for caption, event in [*real_events(), erased_example(), *ops_examples()]:
        text = json.dumps(json.loads(encode_event(event)), indent=2)
        parts += [f"### `{event.type}`: {caption}", "", "```json", text, "```", ""]
    return "\n".join([*parts, END])


def with_examples(document: str) -> str:
    """`document` with its generated block replaced by `examples_block()`; ValueError without markers."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{EVENTS_DOC.name} has no generated-examples markers")
    return document[:start] + examples_block() + document[end + len(END):]


if __name__ == "__main__":
    EVENTS_DOC.write_text(with_examples(EVENTS_DOC.read_text(encoding="utf-8")), encoding="utf-8")
