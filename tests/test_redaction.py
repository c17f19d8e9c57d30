"""Redaction, the pure part: numbers masked or keyed-hashed, transcripts dropped or scrubbed, links dropped,
the event id kept, and the transcript redactor on a table of what it must and must not take out."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import msgspec
import pytest

from contract import events as ev
from contract.privacy import (
    KEEP,
    Redaction,
    RedactKey,
    RulesError,
    key_id,
    mask_number,
    parse_rules,
    parse_setting,
    redact_event,
)
from contract.scrub import luhn, scrub_text
from tests.test_events import CDR, HINTS, NOW, TRANSCRIPT
from workers.enrich import completed_event, transcribed_event, unavailable_event

KEY = RedactKey("k" * 32)


def events() -> list[ev.CloudEvent]:
    return [
        completed_event(CDR, hints=HINTS, rules=frozenset({"failed"}), now=NOW),
        transcribed_event(CDR, TRANSCRIPT, hints=HINTS, now=NOW),
        unavailable_event(CDR, "timed_out", hints=HINTS, now=NOW),
    ]


def as_json(event: ev.CloudEvent) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ev.encode_event(event))
    return loaded


def numbers_in(event: ev.CloudEvent) -> set[str]:
    """Every number an event carries: both parties, each speaker, each turn's speaker."""
    data = event.data
    assert isinstance(data, ev.CallEssentials)
    found = {data.from_.number, data.to.number}
    if isinstance(data, ev.CallTranscribed):
        found |= {s.speaker for s in data.speakers} | {t.speaker for t in data.turns}
    return {n for n in found if n}


def test_keep_is_the_identity_and_adds_no_field() -> None:
    """A destination that redacts nothing gets the event exactly as built: no `redacted` field in its JSON."""
    for event in events():
        assert redact_event(event, KEEP) is event
        assert "redacted" not in as_json(event)["data"]


@pytest.mark.parametrize("rule", ["mask", "hash"])
def test_numbers_are_redacted_everywhere_and_the_id_stays(rule: str) -> None:
    """`numbers: mask|hash` reaches both parties, every speaker and every turn; id, type, subject and time stay,
    and `data.redacted` says what was done."""
    for event in events():
        out = redact_event(event, Redaction(numbers=rule), KEY)  # type: ignore[arg-type]
        assert (out.id, out.type, out.subject, out.time) == (event.id, event.type, event.subject, event.time)
        assert as_json(out)["data"]["redacted"] == [f"numbers:{rule}"]
        assert numbers_in(out) and not numbers_in(out) & {"+14302287001", "+33170363950"}
        text = ev.encode_event(out).decode()
        assert "4302287001" not in text and "170363950" not in text


def test_mask_keeps_the_country_code_and_the_last_two_digits() -> None:
    """+1 430 228 7001 -> "+1********01": one star per hidden digit; raw text keeps only its last 2 digits."""
    assert mask_number("+14302287001") == "+1********01"
    assert mask_number("+33170363950") == "+33*******50"
    assert mask_number("+442079460000") == "+44********00"
    assert mask_number("anonymous") == "*********"
    assert mask_number("sip:4301@pbx") == "************"
    assert mask_number("4302287001") == "********01"


def test_hash_is_stable_across_workers_and_changes_with_the_key() -> None:
    """The same number and key give the same `hmac:<key id>:<hex>` in another process (another worker); another
    key gives another value and another key id, so a rotation is visible."""
    code = ("from contract.privacy import RedactKey; import sys; "
            "print(RedactKey(sys.argv[1]).hash('+14302287001'))")
    other_worker = subprocess.run([sys.executable, "-c", code, "k" * 32], capture_output=True, text=True, check=True)
    ours = KEY.hash("+14302287001")
    assert other_worker.stdout.strip() == ours
    prefix, kid, digest = ours.split(":")
    assert (prefix, kid, len(digest)) == ("hmac", key_id("k" * 32), 64)
    rotated = RedactKey("r" * 32).hash("+14302287001")
    assert rotated != ours and rotated.split(":")[1] != kid
    assert KEY.hash("+14302287002") != ours
    assert "k" * 32 not in repr(KEY)


def test_hashed_numbers_still_join_across_events() -> None:
    """A caller hashed in `completed` is the same value as the same caller in `transcribed` (joins work)."""
    rules = Redaction(numbers="hash")
    completed, transcribed = (redact_event(e, rules, KEY) for e in events()[:2])
    assert isinstance(transcribed.data, ev.CallTranscribed)
    assert completed.data.from_.number == transcribed.data.from_.number
    assert {t.speaker for t in transcribed.data.turns} <= {completed.data.from_.number, completed.data.to.number}


def test_hash_without_a_key_is_refused() -> None:
    with pytest.raises(RulesError, match="REDACT_KEY"):
        redact_event(events()[0], Redaction(numbers="hash"))


def test_transcript_drop_keeps_the_figures() -> None:
    """`transcript: drop`: no turns and no summary; talk time, shares, sentiment counts and score stay."""
    event = events()[1]
    out = redact_event(event, Redaction(transcript="drop"))
    assert isinstance(out.data, ev.CallTranscribed) and isinstance(event.data, ev.CallTranscribed)
    assert (out.data.turns, out.data.summary) == ((), None)
    assert (out.data.speakers, out.data.sentiment, out.data.score) == (
        event.data.speakers, event.data.sentiment, event.data.score)
    assert as_json(out)["data"]["redacted"] == ["transcript:drop"]


def test_transcript_redact_scrubs_each_turn_and_the_summary() -> None:
    """`transcript: redact`: turns kept, their text (and the summary) through the transcript redactor."""
    event = events()[1]
    assert isinstance(event.data, ev.CallTranscribed)
    turn = msgspec.structs.replace(event.data.turns[0], text="my card is 4111 1111 1111 1111")
    data = msgspec.structs.replace(event.data, turns=(turn, *event.data.turns[1:]), summary="Mail a@b.com")
    out = redact_event(msgspec.structs.replace(event, data=data), Redaction(transcript="redact"))
    assert isinstance(out.data, ev.CallTranscribed)
    assert out.data.turns[0].text == "my card is [card]"
    assert out.data.summary == "Mail [email]"
    assert len(out.data.turns) == len(event.data.turns)


def test_recording_url_drop() -> None:
    """`recording_url: drop` publishes null; the other event types have no link and list the rule all the same."""
    out = redact_event(events()[0], Redaction(recording_url="drop"))
    assert as_json(out)["data"]["recording_url"] is None
    assert as_json(events()[0])["data"]["recording_url"]


def test_redacting_twice_changes_nothing() -> None:
    """A retry or a replay of a redacted delivery is redacted again on the way out: it stays as first formed."""
    rules = Redaction(numbers="mask", transcript="drop", recording_url="drop")
    for event in events():
        once = redact_event(event, rules, KEY)
        assert redact_event(once, Redaction(numbers="hash"), KEY) == once


def test_redacted_events_validate_against_the_published_schema() -> None:
    """Every redacted form is valid data under the schema `dataschema` names, and decodes as the same type."""
    document = ev.data_schema()
    rules = Redaction(numbers="hash", transcript="redact", recording_url="drop")
    for event in events():
        out = redact_event(event, rules, KEY)
        jsonschema.Draft202012Validator(document).validate(as_json(out)["data"])
        assert ev.decode_event(ev.encode_event(out)) == out


def test_rules_are_parsed_strictly() -> None:
    """The routing file's mapping and ALERT_REDACT's `name=value` items; unknown names or values are refused."""
    assert parse_rules({"numbers": "Hash", "transcript": "drop"}) == Redaction(numbers="hash", transcript="drop")
    assert parse_setting(["numbers=mask", "recording_url:drop"]) == Redaction(numbers="mask", recording_url="drop")
    with pytest.raises(RulesError, match='unknown field "number"'):
        parse_rules({"number": "mask"})
    with pytest.raises(RulesError, match="not one of keep, mask, hash"):
        parse_rules({"numbers": "scramble"})
    with pytest.raises(RulesError, match="name=value"):
        parse_setting(["mask"])


# --- The transcript redactor. Numbers spoken in words are out of its scope (contract/scrub.py says so). ---

SCRUBBED = [
    ("card 4111 1111 1111 1111 please", "card [card] please"),
    ("card 4111-1111-1111-1111", "card [card]"),
    ("card 5500005555555559.", "card [card]."),
    ("call me on +1 430 228 7001", "call me on [phone]"),
    ("my number is (430) 228-7001 thanks", "my number is [phone] thanks"),
    ("reach me at 4302287001", "reach me at [phone]"),
    ("+33 1 70 36 39 50, merci", "[phone], merci"),
    ("account 12345678901234567890 ok", "account [number] ok"),
    ("account number 123456", "account number [number]"),
    ("it is 4111-1111-1111-1112", "it is [number]"),  # 16 digits failing Luhn: no card, still a number
    ("three four five six seven eight: 3 4 5 6 7 8", "three four five six seven eight: [number]"),
    ("mail jane.doe@example.co.uk.", "mail [email]."),
    ("JOHN+ops@mail.example.com wrote", "[email] wrote"),
]
KEPT = [
    "I called 3 times in 2 days",
    "the total is 1,299.00 dollars",
    "see you at 10:30 or 14:45",
    "on 2024-06-30 and 30/06/2024",
    "room 101, year 2024, zip 94105",
    "order #12345 and pin 1234",
    "version 1.2.3 and pi 3.14159265",
    "12 dollars and 50 cents",
    "ref ABC123456",  # digits inside a word: out of scope
    "five five five, one two three four",  # numbers in words: out of scope
    "at example dot com",
]


@pytest.mark.parametrize(("text", "expected"), SCRUBBED)
def test_scrub_replaces(text: str, expected: str) -> None:
    """Phone, card (Luhn), account numbers and e-mail addresses become placeholders; the rest of the text stays."""
    assert scrub_text(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_scrub_keeps(text: str) -> None:
    """Short numbers, money, times, dates, digits inside words and numbers in words are left alone."""
    assert scrub_text(text) == text


def test_luhn() -> None:
    assert luhn("4111111111111111") and luhn("79927398713")
    assert not luhn("4111111111111112")


def test_mask_numbers_in_text_leaves_ids_and_times() -> None:
    """CONSOLE_REDACT's mask over any text: numbers with '+' and bare ones that make a possible number are masked;
    timestamps, UUIDs, stream ids and decimals are not (the console's links and times keep working)."""
    from contract.privacy import mask_numbers

    text = 'from +14302287001 to {"to": "33170363950"}'
    assert mask_numbers(text) == 'from +1********01 to {"to": "33*******50"}'
    kept = "at 1796682246210, id 1796682246210-0, ts 1700000000.5, 7d1f4c2e-5a0b-4f6e-9c3d-123456789012, 3.14159265358"
    assert mask_numbers(kept) == kept
