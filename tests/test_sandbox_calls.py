"""The generated calls: deterministic under a seed, and covering the mix Wavix produces (data only)."""

from __future__ import annotations

from decimal import Decimal

import phonenumbers
import pytest

from sandbox.calls import generate_call
from sandbox.config import SandboxConfig
from sandbox.state import Sandbox

CONFIG = SandboxConfig(seed=7, start="2026-07-01T09:00:00Z")


@pytest.fixture(scope="module")
def calls():
    return Sandbox(CONFIG).place(500)


def test_same_seed_same_calls_whatever_the_batches() -> None:
    """Call i of a seed is the same call whether placed in one batch or several; another seed differs."""
    one = Sandbox(CONFIG).place(30)
    split = Sandbox(CONFIG)
    batched = split.place(10) + split.place(20)
    assert one == batched
    assert generate_call(CONFIG, 12) == generate_call(CONFIG, 12)
    other = Sandbox(SandboxConfig(seed=8, start=CONFIG.start)).place(30)
    assert {c.call_id for c in other}.isdisjoint({c.call_id for c in one})


def test_dates_follow_start_or_end_when_placed() -> None:
    """With `start`, call i starts `i * spacing_s` after it; without, a call ends when it is placed."""
    dated = Sandbox(CONFIG).place(3)
    assert [c.date for c in dated] == ["2026-07-01T09:00:00.000Z", "2026-07-01T09:00:03.000Z",
                                       "2026-07-01T09:00:06.000Z"]
    now = 1_782_900_000.0
    live = Sandbox(SandboxConfig(seed=7), wall=lambda: now).place(5)
    for call in live:
        assert abs(call.times()[2].timestamp() - now) < 1.0


def test_both_directions_and_every_disposition(calls) -> None:
    """Outbound and inbound calls occur, each with answered, noanswer, busy and failed."""
    for direction in ("outbound", "inbound"):
        seen = {c.disposition for c in calls if c.direction == direction}
        assert seen == {"answered", "noanswer", "busy", "failed"}, direction
    assert {c.type for c in calls} == {"placed", "received"}


def test_machines_answer_outbound_calls_only(calls) -> None:
    """`answered_by: machine` occurs, only on answered outbound calls; inbound calls have no AMD verdict."""
    machines = [c for c in calls if c.answered_by == "machine"]
    assert machines and all(c.direction == "outbound" and c.answered for c in machines)
    assert all(c.answered_by is None for c in calls if c.direction == "inbound")


def test_durations_and_charges_are_exact_decimals(calls) -> None:
    """Unanswered calls last 0 s and cost 0; charge = per_minute * whole minutes, as 4-place strings."""
    for call in calls:
        assert (call.duration > 0) == call.answered
        per_minute, charge = Decimal(call.per_minute), Decimal(call.charge)
        assert charge == per_minute * -(-call.duration // 60)
        assert len(call.per_minute.split(".")[1]) == 4 and len(call.charge.split(".")[1]) == 4


def test_numbers_are_valid_e164_of_several_countries_with_and_without_plus(calls) -> None:
    """Numbers parse as valid numbers of 6+ countries (US, GB, DE, FR, ES, IT...), some without `+`."""
    regions = set()
    for call in calls:
        for number in (call.from_, call.to):
            parsed = phonenumbers.parse("+" + number.lstrip("+"))
            assert phonenumbers.is_valid_number(parsed), number
            regions.add(phonenumbers.region_code_for_number(parsed))
    assert {"US", "GB", "DE", "FR", "ES", "IT"} <= regions
    assert any(c.from_.startswith("+") for c in calls) and any(not c.from_.startswith("+") for c in calls)


def test_recordings_destinations_and_trunks_follow_the_direction(calls) -> None:
    """Outbound calls name a country and a trunk; inbound ones have no trunk and may carry a forward fee."""
    for call in calls:
        assert call.destination
        if call.direction == "outbound":
            assert call.sip_trunk and call.forward_fee == "0.0000"
        else:
            assert call.sip_trunk is None
    assert any(Decimal(c.forward_fee) > 0 for c in calls if c.direction == "inbound")


def test_transcripts_cover_languages_speakers_sentiment_and_scores(calls) -> None:
    """Transcripts exist for person-answered calls only, in 4+ languages, with turns inside the call."""
    transcribed = [c for c in calls if c.transcript is not None]
    assert transcribed and all(c.answered and c.answered_by != "machine" for c in transcribed)
    done = [c for c in transcribed if c.transcript and c.transcript.status == "completed"]
    assert len({c.transcript.language for c in done if c.transcript}) >= 4
    for call in done:
        assert call.transcript is not None
        assert 1.0 <= float(call.transcript.score) <= 5.0 and call.transcript.summary
        speakers = {t.speaker.lstrip("+") for t in call.transcript.turns}
        assert speakers <= {call.from_.lstrip("+"), call.to.lstrip("+")}
        assert all(0 <= t.s < t.e <= call.duration * 1000 for t in call.transcript.turns)
    sentiments = [t.sentiment for c in done if c.transcript for t in c.transcript.turns]
    assert None in sentiments and {"neutral", "positive", "negative"} & set(sentiments)
