"""Keywords: what was said on a call that a rule listens for, and the quote that shows it (pure).

    wavix.call.transcribed (redacted as ALERT_REDACT says) ──> hits(event, rules) ──> one Hit per rule:
        the first turn where one of its words or phrases was said (by the rule's speaker, when it names one),
        quoted with a few words either side

Matching is on whole words, case- and accent-insensitive (contract/alerting.py `fold`: "Annulé" is "annule"):
a turn is cut into words (letters and digits, with an inner apostrophe: "don't" is one word), each folded, and
a phrase matches the same words in a row, whatever punctuation or spacing lies between. So "cancel" hears
"Cancel!" and "I want to CANCEL it", never "cancellation" nor "can celebrate". The quote is the turn's own
text, QUOTE_WORDS words either side of the match, with "…" where it was cut.

Who said it: a turn's speaker number is compared with the call's numbers (the caller is `from`, the callee
`to`); a turn without one is placed by its role and the call's direction (on an inbound call the client
called; on an outbound call the agent did).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from contract.alerting import KeywordRule, fold
from contract.events import CallTranscribedEvent, Turn

QUOTE_WORDS = 6
_WORD = re.compile("\\w+(?:['\\u2019]\\w+)*")  # an inner apostrophe (either kind) keeps a word whole


class Hit(msgspec.Struct, frozen=True):
    """A rule heard on a call: the term, who said it (caller, callee or ""), the quote."""

    rule: str
    term: str
    speaker: str
    quote: str


def _digits(number: str | None) -> str:
    return "".join(c for c in number or "" if c.isdigit())


def speaker_of(turn: Turn, event: CallTranscribedEvent) -> str:
    """caller, callee, or "" when it cannot be told."""
    data = event.data
    spoke = _digits(turn.speaker)
    if spoke:
        if spoke == _digits(data.from_.number):
            return "caller"
        if spoke == _digits(data.to.number):
            return "callee"
    if turn.role == "unknown" or data.direction not in ("inbound", "outbound"):
        return ""
    client_called = data.direction == "inbound"
    return "caller" if (turn.role == "client") == client_called else "callee"


def _find(words: Sequence[str], term: Sequence[str]) -> int:
    """Where the term's words start in `words` (both folded), -1 when not there."""
    n = len(term)
    for i in range(len(words) - n + 1):
        if list(words[i:i + n]) == list(term):
            return i
    return -1


def quote(text: str, spans: Sequence[tuple[int, int]], start: int, end: int) -> str:
    """The text from QUOTE_WORDS words before word `start` to QUOTE_WORDS after word `end` (exclusive)."""
    first, last = max(0, start - QUOTE_WORDS), min(len(spans), end + QUOTE_WORDS)
    cut = " ".join(text[spans[first][0]:spans[last - 1][1]].split())
    return ("…" if first > 0 else "") + cut + ("…" if last < len(spans) else "")


def hit_in(turn_text: str, rule: KeywordRule) -> tuple[str, str] | None:
    """(the term, the quote) of the rule's first term said in this text, None when none is."""
    matches = list(_WORD.finditer(turn_text))
    words = [fold(m.group()) for m in matches]
    spans = [m.span() for m in matches]
    for term in rule.terms:
        folded = [fold(w) for w in _WORD.findall(term)]
        at = _find(words, folded) if folded else -1
        if at >= 0:
            return term, quote(turn_text, spans, at, at + len(folded))
    return None


def hits(event: CallTranscribedEvent, rules: Sequence[KeywordRule]) -> list[Hit]:
    """One Hit per rule heard on the call (its first turn), in the rules' order."""
    found: list[Hit] = []
    for rule in rules:
        for turn in event.data.turns:
            speaker = speaker_of(turn, event)
            if rule.speaker and speaker != rule.speaker:
                continue
            heard = hit_in(turn.text or "", rule)
            if heard is not None:
                found.append(Hit(rule.name, heard[0], speaker, heard[1]))
                break
    return found
