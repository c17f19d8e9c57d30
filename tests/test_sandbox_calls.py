"""The generated calls: deterministic under a seed, and covering the mix Wavix produces (data only)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import phonenumbers
import pytest

from sandbox.calls import account_numbers, generate_call
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
    """With `start`, call i starts `i * spacing_s` after it; with `window_s=0`, a call ends when it is placed."""
    dated = Sandbox(CONFIG).place(3)
    assert [c.date for c in dated] == ["2026-07-01T09:00:00.000Z", "2026-07-01T09:00:03.000Z",
                                       "2026-07-01T09:00:06.000Z"]
    now = 1_782_900_000.0
    live = Sandbox(SandboxConfig(seed=7, window_s=0), wall=lambda: now).place(5)
    for call in live:
        assert abs(call.times()[2].timestamp() - now) < 1.0


def test_seeded_calls_lie_inside_the_last_hour_by_default() -> None:
    """Undated calls start and end within the hour before they are placed, spread over it, seeded."""
    now = 1_782_900_000.0
    calls = Sandbox(SandboxConfig(seed=7), wall=lambda: now).place(300)
    starts = [c.times()[0].timestamp() for c in calls]
    ends = [c.times()[2].timestamp() for c in calls]
    assert all(now - 3600 <= start and end <= now + 0.001 for start, end in zip(starts, ends, strict=True))
    assert max(starts) - min(starts) > 2400  # spread, not bunched at "now"
    again = Sandbox(SandboxConfig(seed=7), wall=lambda: now).place(300)
    assert [c.date for c in again] == [c.date for c in calls]
    narrow = Sandbox(SandboxConfig(seed=7, window_s=600), wall=lambda: now).place(100)
    assert all(c.times()[2].timestamp() <= now + 0.001 for c in narrow)
    assert all(now - 600 <= c.times()[0].timestamp() for c in narrow if c.ring_s + c.duration <= 600)


def test_start_and_spacing_can_straddle_midnight_utc() -> None:
    """`start` 23:59 UTC with 3 s spacing puts the first 20 calls on one day and the rest on the next."""
    calls = Sandbox(SandboxConfig(seed=7, start="2026-06-30T23:59:00Z")).place(40)
    days = [c.date[:10] for c in calls]
    assert days[:20] == ["2026-06-30"] * 20 and days[20:] == ["2026-07-01"] * 20


def test_every_call_uses_one_of_the_account_numbers(calls) -> None:
    """Outbound calls come from an account number, inbound calls go to one; the other side never is one."""
    own = {n.lstrip("+") for n in account_numbers(CONFIG.seed)}
    for call in calls:
        ours, theirs = (call.from_, call.to) if call.direction == "outbound" else (call.to, call.from_)
        assert ours.lstrip("+") in own and theirs.lstrip("+") not in own
        assert call.account_number.lstrip("+") == ours.lstrip("+")


def test_dropped_webhooks_and_null_transcripts_are_facts_of_their_own() -> None:
    """The drop and nulls shares mark about that share of calls and transcripts, and change no other fact."""
    plain = Sandbox(CONFIG).place(400)
    marked = Sandbox(msgspec.structs.replace(CONFIG, drop_webhooks_share=0.25, transcript_nulls_share=0.5)).place(400)
    assert not any(c.webhooks_dropped for c in plain)
    assert 60 <= sum(c.webhooks_dropped for c in marked) <= 140
    with_transcript = [c for c in marked if c.transcript is not None]
    assert 0.3 * len(with_transcript) <= sum(c.transcript.nulls for c in with_transcript if c.transcript)
    unmarked = [msgspec.structs.replace(c, webhooks_dropped=False, transcript=c.transcript and
                                        msgspec.structs.replace(c.transcript, nulls=False)) for c in marked]
    assert unmarked == plain


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
