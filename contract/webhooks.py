"""The webhooks Wavix sends us: what each one asks the service to do, and what it says about the call.

Wavix never retries a webhook, so a refused webhook is a call lost for good. `classify()` therefore
refuses (`PayloadError`, naming the JSON path) only what cannot be a call:
- not JSON, or not an object; nested deeper than `MAX_DEPTH` (64; Wavix's own bodies nest 2 deep);
- no call id: the first of `id`, `uuid`, `call_id` that is neither absent, null nor "" (one order for every
  kind: post-call bodies carry `uuid`, on-call `id` and the deprecated `uuid`);
- an impossible call id: anything but `CALL_ID_PATTERN` (letters, digits, `.`, `_`, `:`, `-`; starts with
  a letter or digit; no `..`) or over 128 characters. Wavix ids are UUIDs; the shape is checked, not the
  UUID version, and no control, format, space or path character can reach a Redis key, a log or a URL.
Every other field is read leniently: a field whose type drifts degrades to None on its own.

Which kind a body is depends only on which fields it has ("present": the key is there and not null), and an
on-call body ends its call only when its event says so, whatever call-record fields drift into it:

| # | the body has                                                                | kind          | starts work     |
|---|-----------------------------------------------------------------------------|---------------|-----------------|
| 1 | `event_type` naming a progress event (`PROGRESS_EVENTS`: ringing, answered) | on-call       | no, recorded    |
| 2 | `event_type` naming no ended event nor post-call, and no `disposition`      | on-call       | no, recorded    |
| 3 | any of `POST_CALL_FIELDS` present (disposition, duration, charge, date...)  | post-call     | yes             |
| 4 | `event_type` naming "post-call"                                             | post-call     | yes             |
| 5 | `event_type` naming an ended event (`TERMINAL_EVENTS`: completed, busy...)  | on-call       | yes             |
| 6 | `status` present, and no key of `CALL_FIELDS` at all (not even a null one)  | transcription | completed/failed |
| 7 | anything else with a call id                                                | post-call     | yes             |

The first matching row wins; event names are read in any case, with `-` or a space for `_`. Rows 1 and 2
come first because an on-call body that is taken for the end of its call starts work at call set-up,
before Wavix has the call's record, and takes the dedup key (`call:{id}`) that the real end-of-call
webhook needs (issue #22: with drift on, 17 of 19 drifted on-call bodies were taken so). A drifted field
(`sip_trunk`, `charge`, even a `disposition`) therefore never outweighs a progress event. An `event_type`
we do not know (unknown word, number, list) beside a `disposition` is a post-call that gained a field
(row 3: the disposition is the post-call's own word that the call ended); without one it is an on-call
body whose event says nothing of an end (row 2). Row 3 comes before rows 4 and 5 so that a post-call
keeps its kind and disposition when it carries `event_type` ("post-call", the name Wavix's webhook
settings give it, or "completed"); row 6 excludes every call field so that a post-call with a null
`disposition` and a `status` is not taken for a transcription; a transcription webhook with another
status is recorded, not acted on. Row 7 keeps any other body with a valid call id: the worker's CDR
fetch is the proof that the call exists. A body is "recorded" when it starts no work: the receiver still
appends it to the call's list (`webhooks_key`), so the worker reads it with the rest of the call, and a
call whose end never arrives is found by reconciliation (the CDR list).

`facts()` reads what a webhook says about its call (direction, machine detection, who answered), for
the worker, which reads every webhook of a call (`webhooks_key`) so that its event does not depend on
arrival order. `decode_post_call` / `decode_on_call` give the typed, lenient view of one body.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

import msgspec

from contract.errors import PayloadError

MAX_DEPTH = 64
MAX_CALL_ID = 128
CALL_ID_PATTERN = r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_:-])*\.?$"  # no lookahead: JSON Schema and test generators read it
WEBHOOKS_KEPT = 64  # the newest webhooks of a call kept in its list (a call sends about ten)

ID_FIELDS = ("id", "uuid", "call_id")
POST_CALL_FIELDS = frozenset({
    "disposition", "duration", "charge", "date", "destination", "per_minute",
    "answered_by", "parent_uuid", "sip_trunk", "forward_fee",  # the older whole-CDR body
})
CALL_FIELDS = POST_CALL_FIELDS | {
    "from", "to", "direction", "event_type", "event_time", "event_payload", "call_started", "call_answered",
    "call_completed", "call_finished", "machine_detected",
}
# On-call events after which the call is over (the spec's four, and spellings other Wavix material uses), and the
# spec's others, which are progress; both as `_event_name` gives them (lower case, `_` for `-` and space).
TERMINAL_EVENTS = frozenset({
    "completed", "busy", "cancelled", "canceled", "rejected", "failed", "noanswer", "no_answer",
    "hangup", "hang_up",
})
PROGRESS_EVENTS = frozenset({"call_setup", "ringing", "early_media", "answered", "on_call_event"})
TRANSCRIPTION_STATUSES = frozenset({"completed", "failed"})
POST_CALL_EVENTS = frozenset({"post_call"})

Number = str | int | float
Phone = str | int


class Kind(enum.StrEnum):
    POST_CALL = "post_call"
    ON_CALL = "on_call"
    TRANSCRIPTION = "transcription"


class Webhook(msgspec.Struct, frozen=True):
    """What a webhook asks for: `starts_work` is false for progress events, which are only recorded."""

    kind: Kind
    call_id: str
    event: str  # post-call: disposition; on-call: event_type; transcription: status ("" when unreadable)
    starts_work: bool

    @property
    def dedup_key(self) -> str:
        """Deliveries with the same key are the same work: every terminal webhook of a call shares one."""
        if self.kind is Kind.TRANSCRIPTION:
            return f"transcript:{self.call_id}:{self.event}"
        return f"call:{self.call_id}"


class WebhookFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What one webhook says about its call; None where it says nothing readable."""

    direction: str | None = None  # "inbound" or "outbound"
    machine_detected: bool | None = None
    answered_by: str | None = None  # stripped, lower case: "human", "machine", ...


class PostCallWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """Post-call webhook: the spec's `CallStatusWebhook`, or the older whole-CDR body, read leniently."""

    uuid: str | None = None
    call_id: str | None = None  # newest CDR naming, accepted in case Wavix moves the webhook too
    direction: str | None = None
    destination: str | None = None
    duration: Number | None = None
    charge: Number | None = None
    date: str | None = None
    disposition: str | None = None
    from_: Phone | None = msgspec.field(name="from", default=None)
    to: Phone | None = None
    per_minute: Number | None = None
    answered_by: str | None = None  # only in the older whole-CDR form, like the three below
    parent_uuid: str | None = None
    sip_trunk: str | None = None
    forward_fee: Number | None = None


class OnCallWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """On-call event: the spec's `Call`, read leniently."""

    id: str | None = None
    uuid: str | None = None  # deprecated alias of `id`
    event_type: str | None = None
    event_time: str | None = None
    event_payload: dict[str, Any] | None = None
    from_: Phone | None = msgspec.field(name="from", default=None)
    to: Phone | None = None
    call_started: str | None = None
    call_answered: str | None = None
    call_completed: str | None = None
    call_finished: str | None = None  # older docs' name for `call_completed`
    machine_detected: bool | None = None
    tag: str | None = None
    direction: str | None = None


def webhooks_key(key_prefix: str, call_id: str) -> str:
    """The Redis list of a call's webhooks, oldest first, at most `WEBHOOKS_KEPT`, expiring with the dedup mark.

    Each entry is one `contract.jobs.Receipt` encoded as the job argument is (`job_serializer`): read it
    back with `receipt_from(job_deserializer(entry))`, then `facts(receipt.body)`.
    """
    return f"{key_prefix}webhooks:{call_id}"


def classify(body: bytes) -> Webhook:
    """Says what a webhook asks for (the table above); `PayloadError` names what makes it no call."""
    fields = load(body)
    event_type = fields.get("event_type")
    event = _token(event_type) if event_type is not None else ""
    name = _event_name(event)
    if event_type is not None and (
        name in PROGRESS_EVENTS
        or (name not in TERMINAL_EVENTS and name not in POST_CALL_EVENTS and fields.get("disposition") is None)
    ):
        return Webhook(Kind.ON_CALL, _call_id(fields, "$.id"), event, False)
    if any(fields[k] is not None for k in POST_CALL_FIELDS.intersection(fields)):
        return Webhook(Kind.POST_CALL, _call_id(fields, "$.uuid"), _token(fields.get("disposition")), True)
    if event_type is not None:
        if name in POST_CALL_EVENTS:
            return Webhook(Kind.POST_CALL, _call_id(fields, "$.uuid"), "", True)
        return Webhook(Kind.ON_CALL, _call_id(fields, "$.id"), event, True)  # an ended event (rows 1-2 took the rest)
    if fields.get("status") is not None and CALL_FIELDS.isdisjoint(fields):
        status = _token(fields["status"])
        return Webhook(Kind.TRANSCRIPTION, _call_id(fields, "$.uuid"), status, status in TRANSCRIPTION_STATUSES)
    return Webhook(Kind.POST_CALL, _call_id(fields, "$.uuid"), "", True)


def facts(body: bytes) -> WebhookFacts:
    """What a webhook says about its call; never raises (an unreadable body says nothing)."""
    try:
        fields = load(body)
    except Exception:
        return WebhookFacts()
    return WebhookFacts(
        direction=_DIRECTIONS.get(_lower(fields.get("direction")) or ""),
        machine_detected=_flag(fields.get("machine_detected")),
        answered_by=_lower(fields.get("answered_by")),
    )


def decode_post_call(body: bytes) -> PostCallWebhook:
    """The post-call view of a body; raises `PayloadError` only when the body is not a JSON object."""
    f = load(body)
    return PostCallWebhook(
        uuid=_text(f.get("uuid")), call_id=_text(f.get("call_id")), direction=_text(f.get("direction")),
        destination=_text(f.get("destination")), duration=_number(f.get("duration")),
        charge=_number(f.get("charge")), date=_text(f.get("date")), disposition=_text(f.get("disposition")),
        from_=_phone(f.get("from")), to=_phone(f.get("to")), per_minute=_number(f.get("per_minute")),
        answered_by=_text(f.get("answered_by")), parent_uuid=_text(f.get("parent_uuid")),
        sip_trunk=_text(f.get("sip_trunk")), forward_fee=_number(f.get("forward_fee")),
    )


def decode_on_call(body: bytes) -> OnCallWebhook:
    """The on-call view of a body; raises `PayloadError` only when the body is not a JSON object."""
    f = load(body)
    payload = f.get("event_payload")
    return OnCallWebhook(
        id=_text(f.get("id")), uuid=_text(f.get("uuid")), event_type=_text(f.get("event_type")),
        event_time=_text(f.get("event_time")), event_payload=payload if isinstance(payload, dict) else None,
        from_=_phone(f.get("from")), to=_phone(f.get("to")), call_started=_text(f.get("call_started")),
        call_answered=_text(f.get("call_answered")), call_completed=_text(f.get("call_completed")),
        call_finished=_text(f.get("call_finished")), machine_detected=_flag(f.get("machine_detected")),
        tag=_text(f.get("tag")), direction=_text(f.get("direction")),
    )


def load(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or `PayloadError` at `$`.

    msgspec first (fast, strict); what it refuses but Python's json reads (a lone UTF-16 surrogate escape
    from an encoder that cut an emoji in half, a number too large for 64 bits) is read by json, since
    such a value in a field we may not even read does not make the body any less a call.
    """
    if _too_deep(body):
        raise PayloadError("$", f"nested deeper than {MAX_DEPTH} levels")
    try:
        value = _decode_json(body)
    except msgspec.DecodeError:
        try:
            value = json.loads(body.decode("utf-8", "replace"), parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:
            raise PayloadError("$", "not valid JSON") from e
    except RecursionError as e:  # _too_deep rules this out; kept so that it can never be a 500
        raise PayloadError("$", f"nested deeper than {MAX_DEPTH} levels") from e
    if not isinstance(value, dict):
        raise PayloadError("$", f"expected a JSON object, got {_json_type(value)}")
    return value


_decode_json = msgspec.json.Decoder().decode
# CALL_ID_PATTERN, checked the fast way (a plain character class is about 3x quicker on a UUID).
_CALL_ID_CHARS = re.compile(r"[A-Za-z0-9._:-]+")
_TOKEN = re.compile(r"[a-z0-9_.:+ -]{1,64}")
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENING = frozenset(b"[{")
_DIRECTIONS = {
    "inbound": "inbound", "incoming": "inbound", "received": "inbound",
    "outbound": "outbound", "outgoing": "outbound", "placed": "outbound",
}
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


def _too_deep(body: bytes) -> bool:
    """Nesting deeper than MAX_DEPTH, outside strings. Only a body with more brackets than that is scanned."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for byte in _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in _OPENING else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(type(value), "a number")


def _call_id(fields: dict[str, Any], missing_path: str) -> str:
    for name in ID_FIELDS:
        value = fields.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise PayloadError(f"$.{name}", "the call id must be a string")
        if len(value) > MAX_CALL_ID:
            raise PayloadError(f"$.{name}", f"the call id is longer than {MAX_CALL_ID} characters")
        if _CALL_ID_CHARS.fullmatch(value) is None or ".." in value or value[0] in "._:-":
            raise PayloadError(f"$.{name}", "the call id may hold only letters, digits and . _ : - (no '..')")
        return value
    raise PayloadError(missing_path, "the call id is missing")


def _event_name(token: str) -> str:
    """An event name as the event sets hold it: `early-media`, `early media` and `early_media` are one."""
    return token.replace("-", "_").replace(" ", "_")


def _token(value: Any) -> str:
    """An event name fit to echo and log: lower case, or "" when it is no short plain word."""
    if not isinstance(value, str):
        return ""
    token = value.strip().lower()
    return token if _TOKEN.fullmatch(token) else ""


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate (see load): unusable text
            return None
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _lower(value: Any) -> str | None:
    text = _text(value) if isinstance(value, str) else None
    if text is None:
        return None
    return text.strip().lower() or None


def _number(value: Any) -> Number | None:
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else None


def _phone(value: Any) -> Phone | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    return None
