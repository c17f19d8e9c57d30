"""The webhooks Wavix sends us, decoded leniently, and what each one asks the service to do.

Wavix has used several bodies over time (../shared/wavix/FACTS.md); all of them decode here:
- post-call: `CallStatusWebhook` in the spec, and before 2026 a whole CDR (`answered_by`, `parent_uuid`,
  `sip_trunk`, `forward_fee`, no `direction`);
- on-call: `Call` in the spec, with `id` (new) or `uuid` (deprecated), `call_completed` or, in older
  docs, `call_finished`;
- transcription completed: `{"uuid", "status"}`.

Numbers may come as strings or as JSON numbers, `disposition` in any case; unknown fields are ignored.
`classify()` turns a raw body into a `Webhook`: which kind it is, which call it names, and whether it
starts work. It raises `PayloadError` naming the JSON path when the body cannot be used.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from contract.errors import PayloadError

# Wavix sends some numbers as strings and, in older material, strings as numbers.
Number = str | int | float
Phone = str | int


class PostCallWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """Post-call webhook: the spec's `CallStatusWebhook`, or the older whole-CDR body."""

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
    # Only in the older whole-CDR form.
    answered_by: str | None = None
    parent_uuid: str | None = None
    sip_trunk: str | None = None
    forward_fee: Number | None = None


class OnCallWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """On-call event: the spec's `Call` schema."""

    id: str | None = None
    uuid: str | None = None  # deprecated alias of `id`
    event_type: str
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


class TranscriptionWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """Call transcription completed: the spec's `CDRTranscriptionCompletedWebhook`."""

    uuid: str
    status: str


class _Probe(msgspec.Struct, frozen=True):
    """Just enough of any body to tell which kind it is."""

    event_type: Any = None
    disposition: Any = None
    status: Any = None


class Kind(enum.StrEnum):
    POST_CALL = "post_call"
    ON_CALL = "on_call"
    TRANSCRIPTION = "transcription"


# On-call events after which the call is over; any of them (or post-call) starts the call's job.
TERMINAL_EVENTS = frozenset({"completed", "busy", "cancelled", "rejected"})
TRANSCRIPTION_STATUSES = frozenset({"completed", "failed"})


class Webhook(msgspec.Struct, frozen=True):
    """What a webhook asks for: `starts_work` is false for on-call events that are only counted."""

    kind: Kind
    call_id: str
    event: str  # post-call: disposition; on-call: event_type; transcription: status
    starts_work: bool

    @property
    def dedup_key(self) -> str:
        """Deliveries with the same key are the same work: every terminal webhook of a call shares one."""
        if self.kind is Kind.TRANSCRIPTION:
            return f"transcript:{self.call_id}:{self.event}"
        return f"call:{self.call_id}"


_probe = msgspec.json.Decoder(_Probe).decode
_post_call = msgspec.json.Decoder(PostCallWebhook).decode
_on_call = msgspec.json.Decoder(OnCallWebhook).decode
_transcription = msgspec.json.Decoder(TranscriptionWebhook).decode


def classify(body: bytes) -> Webhook:
    """Decodes a webhook body and says what it asks for; `PayloadError` names what is wrong."""
    probe = _decode(_probe, body)
    if probe.event_type is not None:
        on_call = _decode(_on_call, body)
        event = on_call.event_type.lower()
        return Webhook(Kind.ON_CALL, _id(on_call.id or on_call.uuid, "$.id"), event, event in TERMINAL_EVENTS)
    if probe.status is not None and probe.disposition is None:
        done = _decode(_transcription, body)
        status = done.status.lower()
        if status not in TRANSCRIPTION_STATUSES:
            raise PayloadError("$.status", f"expected one of {sorted(TRANSCRIPTION_STATUSES)}, got {done.status!r}")
        return Webhook(Kind.TRANSCRIPTION, _id(done.uuid, "$.uuid"), status, True)
    post = _decode(_post_call, body)
    disposition = (post.disposition or "").lower()
    return Webhook(Kind.POST_CALL, _id(post.uuid or post.call_id, "$.uuid"), disposition, True)


def decode_post_call(body: bytes) -> PostCallWebhook:
    webhook: PostCallWebhook = _decode(_post_call, body)
    return webhook


def decode_on_call(body: bytes) -> OnCallWebhook:
    webhook: OnCallWebhook = _decode(_on_call, body)
    return webhook


def _decode(decode: Any, body: bytes) -> Any:
    try:
        return decode(body)
    except msgspec.ValidationError as e:
        message, _, path = str(e).partition(" - at `")
        raise PayloadError(path.rstrip("`") or "$", message) from e
    except msgspec.DecodeError as e:
        raise PayloadError("$", f"not valid JSON ({e})") from e


def _id(value: str | None, path: str) -> str:
    if value is None or not value.strip():
        raise PayloadError(path, "the call id is missing")
    if len(value) > 128:
        raise PayloadError(path, "the call id is longer than 128 characters")
    return value.strip()
