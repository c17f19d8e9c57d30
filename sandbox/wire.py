"""Simulated calls rendered as Wavix's API answers, in the shapes of the official spec.

| body | spec schema |
|---|---|
| `cdr()` | `CDRResponse` (`GET /v1/cdrs/{call_id}`), `transcription` only with `show_transcription=true` |
| `list_item()` | `CDR`: an item of `CDRListResponse` and a line of the NDJSON export (`sandbox.listing`) |
| `transcript()` | `CDRTranscriptionResponse`; the opt-in legacy shape follows the older docs instead, and the |
| | opt-in nulls shape has what the spec forbids: turns with null `text`/`s`/`e`, a null `transcript` or `turns` |
| `error()` / `unauthorized()` | `NotFoundErrorResponse`, `ValidationErrorResponse`, `ForbiddenErrorResponse` / 401's |

Bodies are plain dicts encoded once by `encode` (msgspec); money stays the call's decimal strings.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sandbox.calls import SimCall, Transcript

encode = msgspec.json.Encoder().encode

Body = dict[str, Any]

OVERSIZE_BYTES = 1024 * 1024 + 4096  # an oversized CDR is over 1 MiB


def error(message: str) -> Body:
    return {"success": False, "message": message}


def unauthorized() -> Body:
    return {"success": False, "message": "Unauthorized", "error": True}


def list_item(call: SimCall) -> Body:
    """The spec's `CDR`: the fields every CDR shape shares."""
    return {
        "date": call.date,
        "from": call.from_,
        "to": call.to,
        "disposition": call.disposition,
        "duration": call.duration,
        "destination": call.destination,
        "per_minute": call.per_minute,
        "charge": call.charge,
        "sip_trunk": call.sip_trunk,
        "forward_fee": call.forward_fee,
        "uuid": call.call_id,
        "call_id": call.call_id,
        "parent_uuid": call.parent_call_id,
        "parent_call_id": call.parent_call_id,
        "answered_by": call.answered_by,
    }


def cdr(call: SimCall, base_url: str, ready: Transcript | None, reference: str | None) -> Body:
    """`CDRResponse`: the list item plus `recording_url`; `reference` is the transcript URL when asked."""
    body = list_item(call)
    body["recording_url"] = f"{base_url}/v1/recordings/{call.call_id}" if call.answered else None
    if reference is not None:
        body["transcription"] = {"uuid": ready.uuid, "url": reference} if ready is not None else None
    return body


def transcript(call: SimCall, ready: Transcript, transcription_date: str) -> Body:
    """`CDRTranscriptionResponse`, or the older docs' shape when the transcript is marked legacy."""
    speaker_key = "phone_number" if ready.legacy else "type"
    turns = []
    texts: dict[str, list[str]] = {}
    for turn in ready.turns:
        item: Body = {speaker_key: turn.speaker, "s": turn.s, "e": turn.e, "text": turn.text}
        if turn.sentiment is not None:
            item["sentiment"] = turn.sentiment
        turns.append(item)
        texts.setdefault(turn.speaker, []).append(turn.text)
    body: Body = {
        "transcript": {speaker: " ".join(lines) for speaker, lines in texts.items()},
        "turns": turns,
        "uuid": ready.uuid,
        "language": ready.language,
        "duration": call.duration,
        "charge": ready.charge,
        "status": ready.status,
        "transcription_date": transcription_date,
    }
    if not ready.legacy:
        body |= {"call_date": call.date, "call_uuid": call.call_id,
                 "call_score": ready.score, "call_summary": ready.summary}
    if ready.nulls:
        _spoil_with_nulls(body, call.index)
    return body


def _spoil_with_nulls(body: Body, index: int) -> None:
    """Nulls where the spec has none: every turn loses one of `text`, `s`, `e` in turn; one call in three
    also has a null `transcript` (or, one in three, null `turns`). Chosen by the call's index: stable."""
    for i, item in enumerate(body["turns"]):
        item[("text", "s", "e")[(index + i) % 3]] = None
    if index % 3 == 1:
        body["transcript"] = None
    elif index % 3 == 2:
        body["turns"] = None


def wrong_cdr(call: SimCall, others: list[SimCall], base_url: str) -> Body:
    """The `wrong_cdr` fault: the CDR of another call than the one asked for (a made-up one if none exists)."""
    other = next((c for c in others if c.call_id != call.call_id), None)
    if other is None:
        reversed_id = call.call_id[::-1]
        other = msgspec.structs.replace(call, call_id=reversed_id if reversed_id != call.call_id else f"{reversed_id}0")
    return cdr(other, base_url, None, None)


def oversized(body: Body) -> Body:
    """The `oversized_cdr` fault: the right CDR plus an unknown field that takes it over 1 MiB."""
    return body | {"debug_trace": "x" * OVERSIZE_BYTES}
