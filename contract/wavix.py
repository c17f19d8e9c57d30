"""What the Wavix API answers, decoded leniently: the CDR, the transcription, and Wavix's error body.

Shapes follow the official spec (`CDRResponse`, `TranscriptionReference`, `CDRTranscriptionResponse`,
`TranscriptTurn`) and the older docs (FACTS.md). Wavix's types drift (numbers as strings and back, nulls
where the spec allows them, fields added without notice), so only the shape that makes a record a record
is strict (a JSON object); every field decodes whatever it holds and is read by `text()` or, for
amounts, by `contract.values.plain_decimal`. One odd field never costs the call. Transcript turns follow
the spec's nulls: a turn without `text` is kept with empty text (its time still counts as talk time), a
null `s`/`e` reads as 0, and a null `transcript` or `turns` is an empty transcript.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

Phone = str | int


def text(value: Any) -> str | None:
    """A field as text: strings stripped (empty is None), numbers written out, anything else None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def number(value: Any) -> float:
    """A turn's `s`/`e` (ms): a finite number, or text of one, under 10^12; anything else is 0."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return 0.0
    try:
        read = float(value)
    except (ValueError, OverflowError):
        return 0.0
    return read if math.isfinite(read) and 0 <= read < 1e12 else 0.0


class TranscriptionReference(msgspec.Struct, frozen=True):
    """`show_transcription=true` adds this to a CDR. Its `url` may carry the API key as `appid`: a secret."""

    uuid: Any = None
    url: Any = None


class Cdr(msgspec.Struct, frozen=True, kw_only=True):
    """One call detail record (`GET /v1/cdrs/{call_id}` or the older `GET /v1/cdr/{uuid}`)."""

    call_id: Any = None
    uuid: Any = None  # deprecated alias of call_id
    date: Any = None
    from_: Any = msgspec.field(name="from", default=None)
    to: Any = None
    disposition: Any = None
    duration: Any = None
    destination: Any = None
    per_minute: Any = None
    charge: Any = None
    recording_url: Any = None
    sip_trunk: Any = None
    forward_fee: Any = None
    parent_call_id: Any = None
    parent_uuid: Any = None  # deprecated alias of parent_call_id
    answered_by: Any = None
    direction: Any = None  # not in the spec's CDR; taken when present
    transcription: Any = None  # a TranscriptionReference object, or null

    @property
    def id(self) -> str | None:
        return text(self.call_id) or text(self.uuid)

    @property
    def reference(self) -> TranscriptionReference | None:
        """The transcription reference when it is an object; anything else is no reference."""
        if isinstance(self.transcription, dict):
            return TranscriptionReference(uuid=self.transcription.get("uuid"), url=self.transcription.get("url"))
        return None


class TranscriptTurn(msgspec.Struct, frozen=True, kw_only=True):
    """One stretch of speech. The speaker (a phone number) is in `type`, or `phone_number` in older docs."""

    type: Any = None
    phone_number: Any = None
    s: Any = 0  # ms from answer
    e: Any = 0
    text: Any = ""
    sentiment: Any = None

    @property
    def speaker(self) -> str | None:
        return text(self.type) if self.type is not None else text(self.phone_number)


class Transcript(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/cdrs/{call_id}/transcription` (or the older `/v1/cdr/{uuid}/transcription`)."""

    uuid: Any = None
    status: Any = None
    language: Any = None
    transcript: Any = None  # speaker -> full text, or null
    turns: Any = None  # a list of turns, or null
    duration: Any = None
    charge: Any = None
    transcription_date: Any = None
    call_date: Any = None
    call_uuid: Any = None
    call_score: Any = None
    call_summary: Any = None

    def spoken(self) -> list[TranscriptTurn]:
        """The turns that are objects, in order; anything else in the list is skipped."""
        if not isinstance(self.turns, list):
            return []
        return [msgspec.convert(t, TranscriptTurn) for t in self.turns if isinstance(t, dict)]


class WavixErrorBody(msgspec.Struct, frozen=True):
    """`{"success": false, "message": "..."}`; a 401 adds `"error": true`."""

    success: Any = None
    message: Any = None
    error: Any = None


decode_cdr = msgspec.json.Decoder(Cdr).decode
decode_transcript = msgspec.json.Decoder(Transcript).decode
decode_error = msgspec.json.Decoder(WavixErrorBody).decode
