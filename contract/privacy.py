"""Redaction: an event in the form one destination may receive. Pure: event in, event out.

A destination's routing-file entry (workers/deliver/route.py) says what it may not see, e.g.

    redact: {numbers: hash, transcript: drop, recording_url: drop}

    numbers        keep (default) | mask: country code and last 2 digits, "+1********01"
                                  | hash: "hmac:<key id>:<64 hex>", HMAC-SHA256 of the E.164 text with REDACT_KEY
    transcript     keep (default) | drop: no turns and no summary (speakers' talk time, sentiment, score stay)
                                  | redact: turns and summary with numbers and e-mail addresses replaced
                                    (contract/scrub.py: what it finds, and what it does not)
    recording_url  keep (default) | drop: null

`redact_event(event, rules, key)` applies them to every number (`from`, `to`, each speaker and each turn's
speaker), to the transcript and to the recording link, and lists the rules in `data.redacted`
(e.g. ["numbers:hash", "transcript:drop"]), so a consumer can tell a dropped transcript from an empty one.
The event `id` does not change: it is the same event in a different form, and a consumer's repeat detection
keeps working. It is applied where a delivery is formed (workers/deliver/delivery.py), so the ledger, the
retries and dead letters of that delivery hold the redacted form; Slack alerts take ALERT_REDACT the same way.

The hash is keyed (a plain SHA-256 of a phone number is reversed by trying the ~10^10 numbers of a country in
minutes), the same for one number on every worker and every event (joins across events and destinations work),
and changes with the key. `<key id>` is 8 hex characters derived from the key (`key_id`), so a rotation shows
in the data itself: values under two ids do not join. Redacting an event again changes nothing (an event
already redacted keeps its form), so a retry or a replay of a redacted delivery is sent as first formed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, get_args

import msgspec
import phonenumbers

from contract import events as ev
from contract.scrub import scrub_text
from contract.webhooks import facts

NumbersRule = Literal["keep", "mask", "hash"]
TranscriptRule = Literal["keep", "drop", "redact"]
RecordingRule = Literal["keep", "drop"]
RULES: dict[str, tuple[str, ...]] = {
    "numbers": get_args(NumbersRule), "transcript": get_args(TranscriptRule), "recording_url": get_args(RecordingRule),
}
HASH_PREFIX = "hmac"
MIN_KEY = 16  # characters of REDACT_KEY (contract/settings.py checks it)

E = TypeVar("E", bound=ev.CloudEvent)


class RulesError(ValueError):
    """A `redact:` mapping (or ALERT_REDACT) that names an unknown field or value."""


class Redaction(msgspec.Struct, frozen=True, kw_only=True):
    """What one destination (or Slack, or the console) may not see; all `keep` is the identity."""

    numbers: NumbersRule = "keep"
    transcript: TranscriptRule = "keep"
    recording_url: RecordingRule = "keep"

    @property
    def applied(self) -> tuple[str, ...]:
        """The rules that change something, as `data.redacted` lists them: "numbers:hash", ..."""
        return tuple(f"{name}:{getattr(self, name)}" for name in RULES if getattr(self, name) != "keep")

    @property
    def needs_key(self) -> bool:
        return self.numbers == "hash"


KEEP = Redaction()


def parse_rules(fields: Mapping[str, Any]) -> Redaction:
    """A `redact:` mapping as a Redaction; RulesError names the field or value that is not known."""
    for name, value in fields.items():
        if name not in RULES:
            raise RulesError(f'unknown field "{name}" (known: {", ".join(RULES)})')
        if not isinstance(value, str) or value.strip().lower() not in RULES[name]:
            raise RulesError(f'{name}: "{value}" is not one of {", ".join(RULES[name])}')
    return msgspec.convert({k: str(v).strip().lower() for k, v in fields.items()}, Redaction)


def parse_setting(items: Iterable[str]) -> Redaction:
    """ALERT_REDACT's form: items `numbers=mask` (or `numbers:mask`), e.g. "numbers=mask,transcript=drop"."""
    fields: dict[str, str] = {}
    for item in items:
        name, sep, value = item.replace(":", "=", 1).partition("=")
        if not sep:
            raise RulesError(f'"{item}" is not name=value (e.g. numbers=mask)')
        fields[name.strip().lower()] = value.strip()
    return parse_rules(fields)


class RedactKey:
    """REDACT_KEY, ready to hash: the key and its id. Build it once (settings), pass it where events are formed."""

    __slots__ = ("_key", "key_id")

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()
        self.key_id = key_id(secret)

    def hash(self, value: str) -> str:
        """`hmac:<key id>:<hex>` of `value` (an E.164 number, or the raw text of one that did not parse)."""
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return f"{HASH_PREFIX}:{self.key_id}:{digest}"

    def __repr__(self) -> str:
        return f"RedactKey(key_id={self.key_id!r})"  # never the key


def key_id(secret: str) -> str:
    """8 hex characters that name a key without revealing it: the key's own HMAC of a fixed label."""
    return hmac.new(secret.encode(), b"wavix-events redact key id", hashlib.sha256).hexdigest()[:8]


def is_hashed(value: str) -> bool:
    return value.startswith(HASH_PREFIX + ":")


def mask_number(value: str) -> str:
    """The country code and the last 2 digits of an E.164 number, one '*' per digit in between
    ("+14302287001" -> "+1********01"); text that is no E.164 number keeps only its last 2 digits."""
    if value.startswith("+") and value[1:].isdigit():
        try:
            code = str(phonenumbers.parse(value, None).country_code)
        except phonenumbers.NumberParseException:
            code = ""
        national = value[1 + len(code):]
        if code and len(national) > 2:
            return f"+{code}{'*' * (len(national) - 2)}{national[-2:]}"
    tail = value[-2:] if len(value) > 2 and value[-2:].isdigit() else ""
    return "*" * (len(value) - len(tail)) + tail


# A number in free text: "+" and 7-15 digits, or 10-15 digits standing alone that make a possible number once
# given a "+" (a webhook body's "14302287001"; a timestamp such as 1796682246210 is none), never part of a longer
# word, id, UUID or decimal (no letter, digit, '-' or '.' then digit either side).
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.-])(\+)?(\d{7,15})(?![\w-]|\.\d)")


def _masked_number(match: re.Match[str]) -> str:
    plus, digits = match.group(1), match.group(2)
    if not plus:
        if len(digits) < 10:
            return match.group(0)
        try:
            possible = phonenumbers.is_possible_number(phonenumbers.parse("+" + digits, None))
        except phonenumbers.NumberParseException:
            possible = False
        if not possible:
            return match.group(0)
        return mask_number("+" + digits)[1:]  # its country code and last 2 digits, written as it was: no '+'
    return mask_number(match.group(0))


def mask_numbers(text: str) -> str:
    """`text` with every phone number in it masked (`mask_number`): the console's CONSOLE_REDACT. Pure."""
    return _NUMBER_IN_TEXT.sub(_masked_number, text)


def redact_number(value: str | None, rule: NumbersRule, key: RedactKey | None) -> str | None:
    if value is None or rule == "keep":
        return value
    if rule == "mask":
        return mask_number(value)
    if key is None:
        raise RulesError("numbers: hash needs REDACT_KEY")
    return key.hash(value)


def redact_event(event: E, rules: Redaction, key: RedactKey | None = None) -> E:
    """`event` as a destination with `rules` may receive it: same id, type, subject and time. Pure.
    An event that is not a call's data (`wavix.call.erased`), or that was redacted already, is returned as is."""
    data = event.data
    if not rules.applied or not isinstance(data, ev.CallEssentials) or data.redacted is not msgspec.UNSET:
        return event
    changes: dict[str, Any] = {"redacted": rules.applied}
    if rules.numbers != "keep":
        changes["from_"] = _party(data.from_, rules.numbers, key)
        changes["to"] = _party(data.to, rules.numbers, key)
    if isinstance(data, ev.CallCompleted) and rules.recording_url == "drop":
        changes["recording_url"] = None
    if isinstance(data, ev.CallTranscribed):
        changes.update(_transcript(data, rules, key))
    return msgspec.structs.replace(event, data=msgspec.structs.replace(data, **changes))


def slim_body(body: bytes) -> bytes:
    """A job's webhook body as its dead letter keeps it: cut to what a replay reads of it (workers/fetch/hints.py:
    the call's direction, machine detection, who answered), so a letter kept for weeks holds no phone number or
    other field of the webhook. The replayed job fetches the CDR again."""
    said = msgspec.structs.asdict(facts(body))
    return msgspec.json.encode({k: v for k, v in said.items() if v is not None})


def _party(party: ev.Party, rule: NumbersRule, key: RedactKey | None) -> ev.Party:
    return msgspec.structs.replace(party, number=redact_number(party.number, rule, key))


def _transcript(data: ev.CallTranscribed, rules: Redaction, key: RedactKey | None) -> dict[str, Any]:
    speakers = tuple(msgspec.structs.replace(s, speaker=redact_number(s.speaker, rules.numbers, key))
                     for s in data.speakers)
    if rules.transcript == "drop":
        return {"speakers": speakers, "turns": (), "summary": None}
    turns = tuple(
        msgspec.structs.replace(
            t, speaker=redact_number(t.speaker, rules.numbers, key),
            text=scrub_text(t.text) if rules.transcript == "redact" else t.text)
        for t in data.turns
    )
    summary = scrub_text(data.summary) if rules.transcript == "redact" and data.summary else data.summary
    return {"speakers": speakers, "turns": turns, "summary": summary}
