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

Numbers, links and dates: `party` (E.164 and country, with or without "+" or the "00" prefix), `public_link`
(a URL without the query string Wavix puts its key in) and `utc` (an ISO 8601 date as UTC).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import phonenumbers

from contract.events import Outcome, Party
from contract.wavix import text

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
_NON_GEOGRAPHIC = frozenset({"001", "ZZ"})


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


def party(raw: Any) -> Party:
    """E.164 and ISO country of a number sent with or without "+" or the "00" international prefix.

    A number that does not parse keeps its raw text, with no country. The country is only given when
    the number is valid, or when its calling code belongs to a single country (+33 is France; +1 is not).
    """
    written = text(raw) or ""
    return _party("+" + written[2:] if written.startswith("00") else written)


@functools.lru_cache(maxsize=1024)
def _party(text: str) -> Party:
    """Parsing a number costs ~0.1 ms and an account's own numbers recur in every call: cached, bounded.

    The bound is for the own numbers (an account has tens or hundreds); the other party is new in almost
    every call and gains nothing from a cache. At 8,192 entries the cache was nearly all of the worker's
    Python heap growth over 20,000 calls (tracemalloc: ~100 bytes a call until full) and RSS grew 13.7%
    (3.3% in the second half); at 1,024, 8.0-8.9% (1.7-2.6%), the Python heap flat after the first
    thousand calls."""
    if not text:
        return Party(None, None)
    try:
        number = phonenumbers.parse(text if text.startswith("+") else f"+{text}", None)
    except phonenumbers.NumberParseException:
        return Party(text, None)
    if not phonenumbers.is_possible_number(number):
        return Party(text, None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number) if phonenumbers.is_valid_number(number) else None
    if region is None:
        regions = phonenumbers.region_codes_for_country_code(number.country_code or 0)
        region = regions[0] if len(regions) == 1 else None
    return Party(e164, None if region in _NON_GEOGRAPHIC else region)


def public_link(url: Any) -> str | None:
    """The link without query string, fragment or credentials: Wavix puts the API key there (`appid`).

    Everything after `?` goes, not just known secret names: a name we do not know could be a secret
    too, and the recording endpoint needs only its path and a bearer token.
    """
    link = url.strip() if isinstance(url, str) else ""
    if not link:
        return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def utc(raw: Any) -> datetime | None:
    """An ISO 8601 date as UTC (a date without offset is taken as UTC); None when it does not parse."""
    try:
        parsed = datetime.fromisoformat(raw.strip() if isinstance(raw, str) else "")
    except ValueError:
        return None
    return as_utc(parsed)


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
