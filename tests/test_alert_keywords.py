"""Alerts on what was said: keyword rules over transcripts, whole words, case- and accent-insensitive.

A table of matches and near misses (pure, workers/alert/keywords.py), who said it, the quote, and the real
worker: a rule fires once for a matching transcript, never for a near miss.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from contract.alerting import keyword_rule
from contract.events import TRANSCRIBED, CallTranscribedEvent, Turn
from sandbox.config import SandboxConfig
from sandbox.slack import block_kit_problems
from tests.pipeline import by_type, pipeline
from workers.alert.alerting import keyword_alert
from workers.alert.keywords import hit_in, hits, speaker_of
from workers.alert.slack import render_slack


@pytest.mark.parametrize(
    ("terms", "text", "heard"),
    [
        (["cancel"], "I want to cancel my plan", "cancel"),
        (["cancel"], "CANCEL. Now!", "cancel"),
        (["cancel"], "Cancel!", "cancel"),
        (["annulé"], "Je veux ANNULE tout", "annulé"),  # accents on the rule's side
        (["annule"], "J'ai annulé la commande", "annule"),  # ... and on the speaker's
        (["close my account"], "please close   my, account today", "close my account"),
        (["lawyer", "attorney"], "my Attorney will call", "attorney"),
        (["don't"], "I don\u2019t agree", "don't"),  # either apostrophe
        (["Acme Telecom"], "we are moving to acme telecom next month", "Acme Telecom"),
        (["cancel"], "the cancellation fee", None),  # a longer word is not the word
        (["cancel"], "we can celebrate", None),
        (["cancel"], "precancel", None),
        (["close my account"], "close the account", None),  # a phrase is its words in a row
        (["close my account"], "my account is closed", None),
        (["lawyer"], "law yer", None),
        (["annulé"], "annulation", None),
    ],
)
def test_keywords_match_whole_words_in_any_case_and_accent(terms: list[str], text: str, heard: str | None) -> None:
    """A rule hears its words and phrases as whole words, whatever the case and accents; a near miss (a
    longer word, a split word, a phrase out of order) is never heard."""
    found = hit_in(text, keyword_rule("rule", terms))
    assert (found[0] if found else None) == heard


def test_the_quote_is_the_turn_with_a_few_words_around_the_match() -> None:
    """Six words either side, the turn's own spelling, an ellipsis where it was cut."""
    text = "one two three four five six seven I really want to Cancel this contract right now please okay bye"
    found = hit_in(text, keyword_rule("cancel", ["cancel"]))
    assert found == ("cancel", "…six seven I really want to Cancel this contract right now please okay…")
    assert hit_in("cancel", keyword_rule("c", ["cancel"])) == ("cancel", "cancel")


def _event(direction: str, turns: list[tuple[str | None, str, str]]) -> CallTranscribedEvent:
    data: dict[str, Any] = {
        "call_id": "call-1", "direction": direction, "from": {"number": "+15551230000", "country": "US"},
        "to": {"number": "+4930123456", "country": "DE"}, "outcome": "answered_human", "transcription_id": None,
        "language": "en",
        "summary": "A summary.", "score": None, "speakers": [], "sentiment": {},
        "turns": [{"speaker": speaker, "role": role, "start_ms": 0, "end_ms": 1, "text": text, "sentiment": None}
                  for speaker, role, text in turns],
    }
    envelope = {"specversion": "1.0", "id": "e1", "source": "wavix-events", "type": TRANSCRIBED, "subject": "call-1",
                "time": datetime(2026, 7, 1, 12, tzinfo=UTC).isoformat(), "dataschema": "x", "data": data}
    return msgspec.convert(envelope, CallTranscribedEvent)


@pytest.mark.parametrize(
    ("direction", "speaker", "role", "who"),
    [
        ("outbound", "+15551230000", "agent", "caller"),
        ("outbound", "15551230000", "unknown", "caller"),
        ("inbound", "+4930123456", "client", "callee"),
        ("inbound", None, "client", "caller"),  # an inbound call's client called
        ("outbound", None, "client", "callee"),  # an outbound call's client was called
        ("unknown", None, "client", ""),
    ],
)
def test_who_said_it(direction: str, speaker: str | None, role: str, who: str) -> None:
    """The speaker's number says caller (from) or callee (to); without one, the role and direction do."""
    event = _event(direction, [(speaker, role, "hello")])
    turn: Turn = event.data.turns[0]
    assert speaker_of(turn, event) == who


def test_a_rule_with_a_speaker_hears_only_that_side_and_fires_once_per_call() -> None:
    """`cancel@caller` ignores the callee saying it; heard twice by the caller, it is one hit (the first)."""
    event = _event("inbound", [(None, "agent", "you can cancel anytime"), (None, "client", "then cancel it"),
                               (None, "client", "yes cancel")])
    [hit] = hits(event, [keyword_rule("cancel", ["cancel"], "caller")])
    assert (hit.rule, hit.speaker, hit.quote) == ("cancel", "caller", "then cancel it")
    assert hits(event, [keyword_rule("cancel", ["cancel"], "callee")])[0].quote == "you can cancel anytime"
    alert = keyword_alert(event, hit, console_url="https://console.example/")
    assert (alert.reason, alert.key, alert.link) == ("keyword:cancel", "call-1:keyword:cancel",
                                                     "https://console.example/calls/call-1")
    message = render_slack([alert])
    assert block_kit_problems(message) == [] and "then cancel it" in str(message)


async def test_the_worker_alerts_once_for_a_matching_transcript_and_never_for_a_near_miss() -> None:
    """Real worker, duplicate webhooks, two workers: a call whose transcript says "arrivée" (or "delivery has
    not arrived") gets one `keyword:late` alert in Slack quoting it; the rule `deliver` (a near miss of
    "delivery") never fires."""
    config = SandboxConfig(seed=3, transcript_share=1.0, transcript_failed_share=0.0, machine_share=0.0)
    async with pipeline(config, ALERT_RULES="keyword=slack",
                        ALERT_KEYWORDS="late:arrivee|delivery has not arrived,deliver:deliver") as p:
        await p.place_and_send(24, duplicates=1.0)
        await asyncio.gather(p.run_worker(), p.run_worker())
        await p.flush_alerts()
        transcribed = by_type(await p.events(), TRANSCRIBED)
        said = {call for call, events in transcribed.items()
                if any(hit_in(t.text, keyword_rule("late", ["arrivee", "delivery has not arrived"]))
                       for t in events[0].data.turns)}
        assert said and len(said) < len(transcribed), "the seed should give matches and misses"
        messages = [str(r.message) for r in p.slack.accepted()]
        for call_id in transcribed:
            assert sum(call_id in m for m in messages) == (1 if call_id in said else 0), call_id
        assert not any("(deliver)" in m for m in messages)
