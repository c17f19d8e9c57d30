"""Values: how what Wavix sends becomes what we publish. Pure, table-driven, tested with data alone.

Two decisions live here and nowhere else:

Amounts and durations (`plain_decimal`). Money is a decimal string in USD and durations are seconds;
Wavix sends either as a string or a JSON number. We publish them only as finite, non-negative, plain
decimals (`"0.0000001"`, never `"1E-7"`), at most `MAX_INTEGER_DIGITS` digits before the point and
`MAX_FRACTION_DIGITS` after it. Anything else (`"NaN"`, `"Infinity"`, `"1E+999"`, `"-3"`, `"1,25"`, `true`)
is published as null, and the raw value travels in the event's `anomalies` so nothing Wavix said is lost.
A JSON float is read through its shortest text (`0.1` is `"0.1"`), never through binary.

Outcomes (`outcome_of`). One table maps every disposition and `answered_by` value we know of, in any case
and spacing, to one outcome:

    disposition (squashed: lower case, no spaces, `_` or `-`)   ->  disposition      outcome
    answered                                                    ->  answered         answered_{human,machine,unknown}
    noanswer, "no answer", no_answer, unanswered                ->  noanswer         no_answer
    cancelled, canceled                                         ->  cancelled        no_answer  (caller gave up)
    busy                                                        ->  busy             busy
    rejected, declined                                          ->  rejected         busy       (callee refused)
    failed, error, congestion, unreachable, invalid             ->  failed           failed
    empty or null                                               ->  null             unknown
    anything else                                               ->  null             unknown (raw kept, anomaly)

    answered_by                                                     ->  answered_by
    human, person                                                   ->  human
    machine, machine_start, machine_end_beep, machine_end_silence,
    machine_end_other, machine_end_*, voicemail, fax, answering_machine ->  machine
    unknown, "", null                                               ->  null
    anything else                                                   ->  null (raw kept, anomaly)

A machine answer wins over the disposition (answering-machine detection hangs up, and the disposition of
such a call is not documented). Without a disposition a call answered by a human is `answered_human`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Outcome = Literal["answered_human", "answered_machine", "answered_unknown", "no_answer", "busy", "failed", "unknown"]

MAX_INTEGER_DIGITS = 12  # no call lasts, and no charge reaches, 10^12
MAX_FRACTION_DIGITS = 12

_DISPOSITIONS: dict[str, str] = {
    "answered": "answered",
    "noanswer": "noanswer", "unanswered": "noanswer",
    "cancelled": "cancelled", "canceled": "cancelled",
    "busy": "busy",
    "rejected": "rejected", "declined": "rejected",
    "failed": "failed", "error": "failed", "congestion": "failed", "unreachable": "failed", "invalid": "failed",
}
_NOT_ANSWERED: dict[str, Outcome] = {
    "noanswer": "no_answer", "cancelled": "no_answer", "busy": "busy", "rejected": "busy", "failed": "failed",
}
_HUMAN = frozenset({"human", "person"})
_MACHINE = frozenset({"machine", "voicemail", "fax", "answeringmachine"})
_NOBODY_SAID = frozenset({"", "unknown", "none", "null"})
_SQUASH = re.compile(r"[\s_\-]+")


def plain_decimal(raw: Any) -> tuple[str | None, str | None]:
    """(the plain decimal text, None) for a usable amount; (None, why not) otherwise; (None, None) if absent."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        return None, f"not a number ({type(raw).__name__})"
    try:
        number = Decimal(raw.strip() if isinstance(raw, str) else str(raw))
    except InvalidOperation:
        return None, "not a decimal number"
    if not number.is_finite():
        return None, "not a finite number"
    if number < 0:
        return None, "negative"
    if number != 0 and number.adjusted() >= MAX_INTEGER_DIGITS:
        return None, f"too large (over {MAX_INTEGER_DIGITS} digits)"
    text = format(number, "f")
    if "." in text and len(text.partition(".")[2]) > MAX_FRACTION_DIGITS:
        return None, f"more than {MAX_FRACTION_DIGITS} decimal places"
    return text, None


def squash(raw: Any) -> str:
    """Lower case without spaces, `_` or `-`: "No Answer", "no_answer" and "NOANSWER" are one word."""
    return _SQUASH.sub("", str(raw)).lower() if raw is not None else ""


def disposition_of(raw: Any) -> tuple[str | None, bool]:
    """(the normalised disposition or None, whether the raw value was one we do not know)."""
    word = squash(raw)
    if not word:
        return None, False
    known = _DISPOSITIONS.get(word)
    return known, known is None


def answered_by_of(raw: Any) -> tuple[str | None, bool]:
    """("human" | "machine" | None, whether the raw value was one we do not know)."""
    word = squash(raw)
    if word in _NOBODY_SAID:
        return None, False
    if word in _HUMAN:
        return "human", False
    if word in _MACHINE or word.startswith("machine"):
        return "machine", False
    return None, True


def outcome_of(disposition: str | None, answered_by: str | None) -> Outcome:
    """One word for how the call went, from a normalised disposition and answered_by (see the table)."""
    if answered_by == "machine":
        return "answered_machine"
    if disposition == "answered":
        return "answered_human" if answered_by == "human" else "answered_unknown"
    if disposition in _NOT_ANSWERED:
        return _NOT_ANSWERED[disposition]
    return "answered_human" if answered_by == "human" else "unknown"
