"""The transcript redactor: what a caller said, with the numbers and addresses that identify someone taken out.

    scrub_text("card 4111 1111 1111 1111, call me on +1 430 228 7001") -> "card [card], call me on [phone]"

A pure function of text, used for a destination whose routing file says `transcript: redact`
(contract/privacy.py) and for Slack alerts under ALERT_REDACT. It replaces, in this order:

    [email]    an e-mail address (local@domain.tld)
    [card]     a run of 13-19 digits, alone or in groups split by one space or '-', that passes the Luhn check
    [phone]    a run of 7-15 digits, alone or grouped (a leading '+', a '(area)' group), or any run with a '+'
    [number]   any other run of 6 or more digits: an account, an order, an IBAN's digits, a long reference

What stays: runs of up to 5 digits (amounts, times, "3 items", a year, a room number), dates written
YYYY-MM-DD or DD-MM-YYYY (and with '/'), money and times with '.', ',' or ':' between groups ("1,299.00",
"10:30"): those separators never join digit groups. A group joins a run only through ONE space or '-', so
"3 4 5 6 7 8" becomes [number] (six digits read out one by one are what a caller does with an account).

Out of scope, said plainly: numbers spoken in words ("five five five, one two three four"), which speech-to-text
leaves as words more often than not, and names, addresses and other free-text identifiers. A consumer who must not
receive those takes `transcript: drop`.
"""

from __future__ import annotations

import re

EMAIL = "[email]"
CARD = "[card]"
PHONE = "[phone]"
NUMBER = "[number]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A digit run: an optional '+', then digit groups (or one parenthesised group) joined by at most one ' ' or '-'.
# Not preceded or followed by a word character, '.', ',' or ':' touching a digit (decimals, thousands, times).
_RUN = re.compile(r"(?<![\w.,:/+])(\+\s?)?(?:\(\d{1,5}\)\s?)?\d+(?:[ -]?(?:\(\d{1,5}\)|\d+))*(?![\w]|[.,:/]\d)")
_DATE = re.compile(r"^(?:\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}[-/]\d{1,2}[-/]\d{4})$")


def luhn(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _placeholder(run: str) -> str | None:
    """What a digit run becomes; None: it stays."""
    if _DATE.match(run):
        return None
    digits = re.sub(r"\D", "", run)
    if 13 <= len(digits) <= 19 and luhn(digits):
        return CARD
    if run.startswith("+") and len(digits) >= 4:
        return PHONE
    if 7 <= len(digits) <= 15:
        return PHONE
    if len(digits) >= 6:
        return NUMBER
    return None


def scrub_text(text: str) -> str:
    """`text` with e-mail addresses and phone, card and account numbers replaced by a placeholder. Pure."""
    text = _EMAIL.sub(EMAIL, text)

    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        stripped = run.rstrip(" -")
        placeholder = _placeholder(stripped)
        return run if placeholder is None else placeholder + run[len(stripped):]

    return _RUN.sub(replace, text)
