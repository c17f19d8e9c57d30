"""What the Wavix API answers, decoded leniently: the CDR, the transcription, and Wavix's error body.

Shapes follow the official spec (`CDRResponse`, `TranscriptionReference`, `CDRTranscriptionResponse`,
`TranscriptTurn`) and the older docs (FACTS.md): numbers may be strings or JSON numbers, turns name their
speaker in `type` or, in older docs, `phone_number`; the last four transcript fields may be missing.
Money stays a decimal string here (`Money`); `decimal()` turns it into a `Decimal`, never a float.
Unknown fields are ignored: Wavix adds fields without notice.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec

Money = str | int | float  # as sent; read it with decimal()
Phone = str | int


def decimal(value: Money | None) -> Decimal | None:
    """A sent amount as an exact Decimal (a JSON float goes through its shortest text, not binary)."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class TranscriptionReference(msgspec.Struct, frozen=True):
    """`show_transcription=true` adds this to a CDR. Its `url` may carry the API key as `appid`: a secret."""

    uuid: str | None = None
    url: str | None = None


class Cdr(msgspec.Struct, frozen=True, kw_only=True):
    """One call detail record (`GET /v1/cdrs/{call_id}` or the older `GET /v1/cdr/{uuid}`)."""

    call_id: str | None = None
    uuid: str | None = None  # deprecated alias of call_id
    date: str | None = None
    from_: Phone | None = msgspec.field(name="from", default=None)
    to: Phone | None = None
    disposition: str | None = None
    duration: int | str | float | None = None
    destination: str | None = None
    per_minute: Money | None = None
    charge: Money | None = None
    recording_url: str | None = None
    sip_trunk: str | int | None = None
    forward_fee: Money | None = None
    parent_call_id: str | None = None
    parent_uuid: str | None = None  # deprecated alias of parent_call_id
    answered_by: str | None = None
    direction: str | None = None  # not in the spec's CDR; taken when present
    transcription: TranscriptionReference | None = None

    @property
    def id(self) -> str | None:
        return self.call_id or self.uuid


class TranscriptTurn(msgspec.Struct, frozen=True, kw_only=True):
    """One stretch of speech. The speaker (a phone number) is in `type`, or `phone_number` in older docs."""

    type: str | int | None = None
    phone_number: str | int | None = None
    s: int | float = 0  # ms from answer
    e: int | float = 0
    text: str = ""
    sentiment: str | None = None

    @property
    def speaker(self) -> str | None:
        who = self.type if self.type is not None else self.phone_number
        return None if who is None else str(who)


class Transcript(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/cdrs/{call_id}/transcription` (or the older `/v1/cdr/{uuid}/transcription`)."""

    uuid: str | None = None
    status: str | None = None
    language: str | None = None
    transcript: dict[str, str] = msgspec.field(default_factory=dict)
    turns: list[TranscriptTurn] = msgspec.field(default_factory=list)
    duration: int | str | float | None = None
    charge: Money | None = None
    transcription_date: str | None = None
    call_date: str | None = None
    call_uuid: str | None = None
    call_score: str | int | float | None = None
    call_summary: str | None = None


class WavixErrorBody(msgspec.Struct, frozen=True):
    """`{"success": false, "message": "..."}`; a 401 adds `"error": true`."""

    success: bool | None = None
    message: str | None = None
    error: bool | None = None


decode_cdr = msgspec.json.Decoder(Cdr).decode
decode_transcript = msgspec.json.Decoder(Transcript).decode
decode_error = msgspec.json.Decoder(WavixErrorBody).decode
