"""Enrichment pinned with data alone: a CDR and a transcript as Wavix sends them in, an event out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from contract.errors import PayloadError
from contract.events import Party, TranscriptionUnavailableEvent, encode_event
from contract.wavix import Cdr, Transcript, decode_cdr, decode_transcript
from contract.webhooks import facts
from workers.enrich import (
    CallHints,
    completed_event,
    hints_from,
    party,
    public_link,
    transcribed_event,
    transcript_event,
    unavailable_event,
)

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
NO_HINTS = CallHints()
RULES = frozenset({"failed", "machine"})
AGENT = "+14302287001"  # valid US number
CLIENT = "+33170363950"  # valid French number


def cdr(**fields: Any) -> Cdr:
    """A CDR decoded from JSON, as the client would get it; `None` drops a field."""
    body: dict[str, Any] = {
        "call_id": "call-1",
        "date": "2026-06-30T10:00:00.000Z",
        "from": "14302287001",
        "to": "33170363950",
        "disposition": "answered",
        "duration": 6,
        "destination": "France",
        "per_minute": "0.027",
        "charge": "0.162",
    }
    body.update(fields)
    return decode_cdr(msgspec.json.encode({k: v for k, v in body.items() if v is not None}))


def transcript(turns: list[dict[str, Any]], **fields: Any) -> Transcript:
    return decode_transcript(msgspec.json.encode({"uuid": "tr-1", "status": "completed", "turns": turns, **fields}))


def completed(record: Cdr, hints: CallHints = NO_HINTS, rules: frozenset[str] = RULES) -> Any:
    return completed_event(record, hints=hints, rules=rules, now=NOW).data


@pytest.mark.parametrize(
    ("disposition", "answered", "hints", "expected"),
    [
        ("answered", "human", NO_HINTS, "answered_human"),
        ("answered", "machine", NO_HINTS, "answered_machine"),
        ("answered", None, NO_HINTS, "answered_unknown"),
        ("ANSWERED", None, NO_HINTS, "answered_unknown"),
        ("answered", None, CallHints(machine_detected=True), "answered_machine"),
        ("noanswer", None, NO_HINTS, "no_answer"),
        ("No Answer", None, NO_HINTS, "no_answer"),
        ("busy", None, NO_HINTS, "busy"),
        ("failed", None, NO_HINTS, "failed"),
        ("noanswer", "machine", NO_HINTS, "answered_machine"),
        (None, None, NO_HINTS, "unknown"),
    ],
)
def test_outcome_for_every_disposition(
    disposition: str | None, answered: str | None, hints: CallHints, expected: str
) -> None:
    """Disposition (any case) and answered_by make one outcome; a machine answer wins over the disposition."""
    assert completed(cdr(disposition=disposition, answered_by=answered), hints).outcome == expected


def test_disposition_is_lower_cased() -> None:
    """Older docs' "ANSWERED" is published as the spec's "answered"; "No Answer" as "noanswer"."""
    assert completed(cdr(disposition="ANSWERED")).disposition == "answered"
    assert completed(cdr(disposition="No Answer")).disposition == "noanswer"


@pytest.mark.parametrize("raw", ["14302287001", "+14302287001", 14302287001, " +1 430 228 7001 "])
def test_numbers_with_or_without_plus_become_e164(raw: str | int) -> None:
    """A number as text with or without "+", or as a JSON integer, becomes E.164 with its country."""
    assert completed(cdr(**{"from": raw})).from_ == Party(AGENT, "US")


def test_to_number_gets_its_own_country() -> None:
    """Each end is normalised on its own: the French callee is FR, the US caller US."""
    data = completed(cdr())
    assert (data.from_.country, data.to) == ("US", Party(CLIENT, "FR"))


def test_number_of_a_shared_calling_code_gets_no_guessed_country() -> None:
    """+1 555... is possible but not valid: E.164 yes, but no country (+1 is shared by many countries)."""
    assert party("15551234567") == Party("+15551234567", None)


@pytest.mark.parametrize("raw", ["anonymous", "sip:agent@pbx.example", "12"])
def test_unparseable_number_keeps_its_raw_text(raw: str) -> None:
    """What is not a phone number is published as sent, with a null country."""
    assert party(raw) == Party(raw, None)


def test_missing_number_is_null() -> None:
    """No number in the CDR means a null number, not the text "None"."""
    assert party(None) == Party(None, None)


def test_money_sent_as_strings_is_exact_decimal() -> None:
    """Money strings are published digit for digit, and missing amounts stay null."""
    data = completed(cdr(per_minute="0.027", charge="0.162"))
    assert (data.per_minute, data.charge, data.forward_fee, data.currency) == ("0.027", "0.162", None, "USD")


def test_money_sent_as_floats_is_exact_decimal_and_encoded_as_strings() -> None:
    """Older docs' JSON numbers: 0.01 becomes "0.01" (not the binary 0.0100000000000000002...)
    and every amount is encoded as a JSON string."""
    event = completed_event(cdr(charge=0.01, per_minute=0.027, forward_fee=0), hints=NO_HINTS, rules=RULES, now=NOW)
    assert event.data.charge == "0.01"
    data = json.loads(encode_event(event))["data"]
    assert (data["charge"], data["per_minute"], data["forward_fee"]) == ("0.01", "0.027", "0")


@pytest.mark.parametrize(("raw", "expected"), [(6, "6"), ("6", "6"), (None, None)])
def test_duration_as_int_or_string(raw: int | str | None, expected: str | None) -> None:
    """The duration is read from an integer or a string alike, and stays null when missing."""
    assert completed(cdr(duration=raw)).duration_s == expected


def test_recording_link_loses_its_secrets() -> None:
    """The query string (appid, api_key, token, key, signature, ...) and any credentials never get published."""
    url = "https://u:pw@api.wavix.com/v1/recordings/r1?appid=S1&api_key=S2&token=S3&key=S4&signature=S5#t=1"
    event = completed_event(cdr(recording_url=url), hints=NO_HINTS, rules=RULES, now=NOW)
    assert event.data.recording_url == "https://api.wavix.com/v1/recordings/r1"
    encoded = encode_event(event)
    assert not any(secret in encoded for secret in (b"S1", b"S2", b"S3", b"S4", b"S5", b"pw"))


def test_transcription_reference_secret_is_never_published() -> None:
    """The CDR's transcription link carries the API key as `appid`; no event copies it."""
    record = cdr(transcription={"uuid": "tr-1", "url": "https://api.wavix.com/t/tr-1?appid=TOPSECRET"})
    events = [
        completed_event(record, hints=NO_HINTS, rules=RULES, now=NOW),
        transcribed_event(record, transcript([]), hints=NO_HINTS, now=NOW),
        unavailable_event(record, "timed_out", hints=NO_HINTS, now=NOW),
    ]
    assert all(b"TOPSECRET" not in encode_event(event) for event in events)


@pytest.mark.parametrize("url", [None, "", "  "])
def test_no_recording_link_is_null(url: str | None) -> None:
    """A call without a recording publishes a null link, not an empty string."""
    assert public_link(url) is None


@pytest.mark.parametrize(
    ("hint", "cdr_direction", "answered", "expected"),
    [
        ("inbound", "outbound", None, "inbound"),  # the webhook's word wins
        ("INBOUND", None, None, "inbound"),
        (None, "outbound", None, "outbound"),  # else the CDR's
        ("sideways", "inbound", None, "inbound"),  # a hint we cannot read is no hint
        (None, None, "machine", "outbound"),  # machine detection is outbound-only
        (None, None, "human", "unknown"),
        (None, None, None, "unknown"),
    ],
)
def test_direction_fallbacks(hint: str | None, cdr_direction: str | None, answered: str | None, expected: str) -> None:
    """Direction: the webhook's hint, else the CDR's, else outbound for a machine answer, else unknown."""
    record = cdr(direction=cdr_direction, answered_by=answered)
    assert completed(record, CallHints(direction=hint)).direction == expected


def test_machine_detected_hint_fills_answered_by_and_direction() -> None:
    """An on-call `machine_detected` stands in for a missing answered_by, which makes the call outbound."""
    data = completed(cdr(), CallHints(machine_detected=True))
    assert (data.answered_by, data.direction, data.alert_reasons) == ("machine", "outbound", ("machine",))


def test_cdr_answered_by_wins_over_the_hint() -> None:
    """The CDR is the record: its answered_by stands even when the on-call event guessed otherwise."""
    assert completed(cdr(answered_by="human"), CallHints(machine_detected=True)).answered_by == "human"


@pytest.mark.parametrize(
    ("disposition", "answered", "rules", "expected"),
    [
        ("failed", None, RULES, ["failed"]),
        ("FAILED", None, RULES, ["failed"]),
        ("answered", "machine", RULES, ["machine"]),
        ("noanswer", "machine", RULES, ["machine"]),  # whatever the disposition
        ("failed", "machine", RULES, ["failed", "machine"]),
        ("failed", "machine", frozenset({"machine"}), ["machine"]),
        ("failed", "machine", frozenset(), []),
        ("busy", None, RULES, []),
        ("busy", None, frozenset({"busy", "no_answer"}), ["busy"]),
        ("answered", "human", RULES | {"busy", "no_answer", "nonsense"}, []),
    ],
)
def test_alert_reasons_follow_the_enabled_rules(
    disposition: str, answered: str | None, rules: frozenset[str], expected: list[str]
) -> None:
    """Alerts fire for failed calls and machine answers, only for the rules enabled, in a fixed order."""
    record = cdr(disposition=disposition, answered_by=answered)
    assert completed(record, rules=rules).alert_reasons == tuple(expected)


def test_machine_alert_from_the_hint() -> None:
    """The on-call `machine_detected` alone trips the machine rule."""
    assert completed(cdr(), CallHints(machine_detected=True)).alert_reasons == ("machine",)


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("2026-06-30T10:00:00.000Z", datetime(2026, 6, 30, 10, tzinfo=UTC)),
        ("2026-06-30T12:00:00+02:00", datetime(2026, 6, 30, 10, tzinfo=UTC)),
        ("2026-06-30 10:00:00", datetime(2026, 6, 30, 10, tzinfo=UTC)),  # no offset: UTC
        (None, NOW),
        ("yesterday", NOW),
    ],
)
def test_event_time_is_the_call_date_else_now(date: str | None, expected: datetime) -> None:
    """`time` is the CDR's date in UTC; without a readable date it is `now`."""
    event = completed_event(cdr(date=date), hints=NO_HINTS, rules=RULES, now=NOW)
    assert event.time == expected
    assert event.time.utcoffset() is not None


def test_deprecated_uuid_and_parent_uuid_are_read() -> None:
    """Older CDRs name the call `uuid` and its parent `parent_uuid`; both are published under the new names."""
    data = completed(cdr(call_id=None, uuid="old-1", parent_uuid="parent-0"))
    assert (data.call_id, data.parent_call_id) == ("old-1", "parent-0")


def test_cdr_without_call_id_is_a_payload_error() -> None:
    """An event needs a subject: a CDR naming no call raises PayloadError at $.call_id."""
    with pytest.raises(PayloadError) as raised:
        completed(cdr(call_id=None))
    assert raised.value.path == "$.call_id"


def test_sip_trunk_sent_as_a_number_is_text() -> None:
    """`sip_trunk` is a login: a JSON number is published as its text."""
    assert completed(cdr(sip_trunk=32882)).sip_trunk == "32882"


TURNS = [
    {"type": "14302287001", "s": 0, "e": 3000, "text": "Hello, Acme here.", "sentiment": "Neutral"},
    {"type": "+33170363950", "s": 3000, "e": 4000, "text": "Hi.", "sentiment": "POSITIVE"},
    {"type": "14302287001", "s": 4000, "e": 5000, "text": "Great!", "sentiment": "positive"},
]


def test_outbound_roles_and_talk_time() -> None:
    """Outbound: `from` is our agent, `to` the client; talk time sums e - s per speaker, shares sum to 1."""
    data = transcribed_event(cdr(direction="outbound"), transcript(TURNS), hints=NO_HINTS, now=NOW).data
    summary = [(s.speaker, s.role, s.talk_s, s.share) for s in data.speakers]
    assert summary == [
        (AGENT, "agent", Decimal("4.000"), Decimal("0.8000")),
        (CLIENT, "client", Decimal("1.000"), Decimal("0.2000")),
    ]
    assert [t.role for t in data.turns] == ["agent", "client", "agent"]


def test_inbound_roles_are_reversed() -> None:
    """Inbound: the called number (`to`) is our agent and the caller the client."""
    record = cdr(**{"from": "33170363950", "to": "14302287001"})
    data = transcribed_event(record, transcript(TURNS), hints=CallHints(direction="inbound"), now=NOW).data
    assert {s.speaker: s.role for s in data.speakers} == {AGENT: "agent", CLIENT: "client"}


def test_unknown_direction_and_stranger_get_unknown_role() -> None:
    """Without a direction nobody can be called agent; a speaker matching neither number is unknown."""
    stranger = [{"type": "442071838750", "s": 0, "e": 1000, "text": "?"}]
    unknown = transcribed_event(cdr(), transcript(TURNS), hints=NO_HINTS, now=NOW).data
    outbound = transcribed_event(cdr(direction="outbound"), transcript(stranger), hints=NO_HINTS, now=NOW).data
    assert {s.role for s in unknown.speakers} == {"unknown"}
    assert [(s.speaker, s.role) for s in outbound.speakers] == [("+442071838750", "unknown")]


def test_older_phone_number_turns() -> None:
    """Older docs name the speaker `phone_number`, sometimes as a JSON number; it is matched all the same."""
    turns = [{"phone_number": 33170363950, "s": 0, "e": 2500, "text": "Hi"}]
    data = transcribed_event(cdr(direction="outbound"), transcript(turns), hints=NO_HINTS, now=NOW).data
    assert (data.turns[0].speaker, data.turns[0].role, data.speakers[0].talk_s) == (CLIENT, "client", Decimal("2.500"))


def test_turns_are_published_in_order_with_times() -> None:
    """Each turn keeps its text and times in ms; sentiment is lower-cased."""
    data = transcribed_event(cdr(direction="outbound"), transcript(TURNS), hints=NO_HINTS, now=NOW).data
    first = data.turns[0]
    assert (first.speaker, first.start_ms, first.end_ms, first.text, first.sentiment) == (
        AGENT,
        0,
        3000,
        "Hello, Acme here.",
        "neutral",
    )


def test_sentiment_counts_are_lower_cased() -> None:
    """Sentiments count per lower-cased value; turns without one are not counted."""
    turns = [*TURNS, {"type": "14302287001", "s": 5000, "e": 6000, "text": "Bye"}]
    data = transcribed_event(cdr(), transcript(turns), hints=NO_HINTS, now=NOW).data
    assert data.sentiment == {"neutral": 1, "positive": 2}


def test_transcript_summary_score_and_language() -> None:
    """Summary, language and the "1.0"-"5.0" score are published; the score as an exact Decimal."""
    full = transcript(TURNS, language="en", call_summary="Billing question.", call_score="4.5")
    data = transcribed_event(cdr(), full, hints=NO_HINTS, now=NOW).data
    assert (data.language, data.summary, data.score, data.transcription_id) == (
        "en",
        "Billing question.",
        "4.5",
        "tr-1",
    )


def test_transcript_without_optional_fields() -> None:
    """Older transcripts lack summary and score: both are null, nothing fails."""
    data = transcribed_event(cdr(), transcript(TURNS), hints=NO_HINTS, now=NOW).data
    assert (data.summary, data.score, data.language) == (None, None, None)


def test_silent_transcript_has_no_speakers_and_no_division_by_zero() -> None:
    """A transcript with no turns has no speakers and empty counts; zero-length turns share zero."""
    empty = transcribed_event(cdr(), transcript([]), hints=NO_HINTS, now=NOW).data
    silent = transcribed_event(cdr(), transcript([{"type": "1", "s": 5, "e": 5}]), hints=NO_HINTS, now=NOW).data
    assert (empty.speakers, empty.turns, empty.sentiment) == ((), (), {})
    assert silent.speakers[0].share == Decimal("0")


def test_failed_transcript_becomes_unavailable() -> None:
    """Wavix's `status: failed` transcript is announced as transcription_unavailable with reason failed."""
    event = transcript_event(cdr(), transcript([], status="failed"), hints=NO_HINTS, now=NOW)
    assert isinstance(event, TranscriptionUnavailableEvent)
    assert (event.type, event.data.reason) == ("wavix.call.transcription_unavailable", "failed")
    done = transcript_event(cdr(), transcript(TURNS), hints=NO_HINTS, now=NOW)
    assert done.type == "wavix.call.transcribed"


@pytest.mark.parametrize("reason", ["failed", "not_provisioned", "timed_out"])
def test_unavailable_carries_its_reason_and_the_essentials(reason: str) -> None:
    """transcription_unavailable says why, and repeats who called whom and how it went."""
    data = unavailable_event(cdr(answered_by="human"), reason, hints=NO_HINTS, now=NOW).data
    assert (data.reason, data.call_id, data.from_.number, data.outcome) == (reason, "call-1", AGENT, "answered_human")


def test_unknown_unavailable_reason_is_refused() -> None:
    """A reason outside the published enum is a caller bug, refused before it reaches consumers."""
    with pytest.raises(ValueError, match="reason"):
        unavailable_event(cdr(), "bored", hints=NO_HINTS, now=NOW)


def test_hints_from_webhooks() -> None:
    """On-call gives direction and machine_detected; the older post-call body's answered_by=machine counts too."""
    on_call = facts(b'{"id": "c", "event_type": "completed", "direction": "outbound", "machine_detected": true}')
    post_call = facts(b'{"uuid": "c", "answered_by": "machine"}')
    assert hints_from([on_call]) == CallHints(direction="outbound", machine_detected=True)
    assert hints_from([post_call]) == CallHints(direction=None, answered_by="machine")


def test_hints_do_not_depend_on_the_order_webhooks_came_in() -> None:
    """Every permutation of a call's webhooks gives the same hints, and so the same event."""
    import itertools

    bodies = [b'{"uuid": "c", "disposition": "answered"}', b'{"id": "c", "event_type": "answered", "direction":'
              b' "inbound"}', b'{"id": "c", "event_type": "completed"}']
    seen = {hints_from([facts(b) for b in order]) for order in itertools.permutations(bodies)}
    assert seen == {CallHints(direction="inbound")}


def test_conflicting_webhooks_fall_back_to_the_listed_type() -> None:
    """Webhooks that disagree on direction say nothing; the CDR list's `type` decides."""
    said = [facts(b'{"id": "c", "direction": "inbound"}'), facts(b'{"id": "c", "direction": "outbound"}')]
    assert hints_from(said, listed_type="placed").direction == "outbound"
    assert hints_from(said).direction is None


def test_unusable_amounts_are_null_with_their_raw_value_kept() -> None:
    """NaN, a negative duration and "1,25" are published as null; each raw value is kept in `anomalies`."""
    data = completed(cdr(charge="NaN", duration=-3, per_minute="1,25", forward_fee=1e-07))
    assert (data.charge, data.duration_s, data.per_minute, data.forward_fee) == (None, None, None, "0.0000001")
    kept = {a.field: a.raw for a in data.anomalies}
    assert kept == {"charge": '"NaN"', "duration": "-3", "per_minute": '"1,25"'}
    encoded = json.loads(encode_event(completed_event(cdr(forward_fee=1e-07), hints=NO_HINTS, rules=RULES, now=NOW)))
    assert encoded["data"]["forward_fee"] == "0.0000001"


def test_an_unknown_disposition_is_an_unknown_outcome_that_alerts_as_failed() -> None:
    """An unknown disposition: outcome `unknown`, raw value kept, and the `failed` rule fires for it."""
    data = completed(cdr(disposition="teleported"))
    assert (data.outcome, data.disposition, data.alert_reasons) == ("unknown", None, ("failed",))
    assert [(a.field, a.raw) for a in data.anomalies] == [("disposition", '"teleported"')]
    assert completed(cdr(disposition=None)).alert_reasons == ("failed",)


@pytest.mark.parametrize("answered", ["machine_start", "machine_end_beep", "voicemail", "fax"])
def test_every_machine_answer_alerts(answered: str) -> None:
    """AMD's finer answers (machine_start, machine_end_*, voicemail, fax) are a machine, and alert as one."""
    data = completed(cdr(answered_by=answered))
    assert (data.answered_by, data.outcome, data.alert_reasons) == ("machine", "answered_machine", ("machine",))


def test_cancelled_and_canceled_are_one_outcome() -> None:
    """Both spellings are the same call: no answer, caller gave up."""
    assert completed(cdr(disposition="canceled")).outcome == completed(cdr(disposition="cancelled")).outcome


def test_numbers_with_a_00_prefix_become_e164() -> None:
    """"0033170363950" is the international form of +33 1 70 36 39 50."""
    assert completed(cdr(to="0033170363950")).to == Party(CLIENT, "FR")


@pytest.mark.parametrize(("own", "expected"), [({AGENT}, "outbound"), ({CLIENT}, "inbound"), (set(), "unknown")])
def test_the_accounts_numbers_tell_the_direction(own: set[str], expected: str) -> None:
    """A call from one of the account's numbers is outbound, to one of them inbound; neither says nothing."""
    assert completed(cdr(), CallHints(own_numbers=frozenset(own))).direction == expected


def test_a_transcript_with_the_specs_nulls_is_still_transcribed() -> None:
    """Null text and times in a turn keep the turn (text "", times 0); the call still gets `transcribed`."""
    record = transcript([{"type": AGENT[1:], "s": None, "e": None, "text": None}, {"type": None, "s": 0, "e": 5}])
    event = transcript_event(cdr(), record, hints=CallHints(direction="outbound"), now=NOW)
    assert event.type == "wavix.call.transcribed"
    assert [(t.text, t.start_ms, t.end_ms, t.role) for t in event.data.turns] == [("", 0, 0, "agent"),
                                                                                   ("", 0, 5, "unknown")]
    empty = decode_transcript(b'{"uuid": "t", "status": "completed", "transcript": null, "turns": null}')
    assert transcript_event(cdr(), empty, hints=NO_HINTS, now=NOW).type == "wavix.call.transcribed"


def test_drifted_cdr_fields_degrade_alone() -> None:
    """A CDR whose fields drift in type (trunk as number, answered_by as a list) still gives its event."""
    data = completed(cdr(sip_trunk=12, answered_by=["x"], destination=5, recording_url=7))
    assert (data.sip_trunk, data.answered_by, data.destination, data.recording_url) == ("12", None, "5", None)
