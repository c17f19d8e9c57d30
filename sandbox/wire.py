"""Simulated calls rendered as Wavix's API answers, in the shapes of the official spec.

| body | spec schema |
|---|---|
| `cdr()` | `CDRResponse` (`GET /v1/cdrs/{call_id}`), `transcription` only with `show_transcription=true` |
| `list_page()` | `CDRListResponse` of `CDR` items (no `recording_url`, no `transcription`) + `Pagination` |
| `transcript()` | `CDRTranscriptionResponse`; the opt-in legacy shape follows the older docs instead |
| `error()` / `unauthorized()` | `NotFoundErrorResponse`, `ValidationErrorResponse`, `ForbiddenErrorResponse` / 401's |

Bodies are plain dicts encoded once by `encode` (msgspec); money stays the call's decimal strings.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

import msgspec

from sandbox.calls import SimCall, Transcript

encode = msgspec.json.Encoder().encode

Body = dict[str, Any]

LIST_TYPES = {"placed": "outbound", "received": "inbound"}
DISPOSITION_FILTERS = frozenset({"answered", "noanswer", "busy", "failed", "all"})
MAX_PER_PAGE = 1000


class BadParameter(Exception):
    """A list parameter is missing or invalid; the message is Wavix's."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Missing or invalid parameter {name}")


def error(message: str) -> Body:
    return {"success": False, "message": message}


def unauthorized() -> Body:
    return {"success": False, "message": "Unauthorized", "error": True}


def _list_item(call: SimCall) -> Body:
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
    body = _list_item(call)
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
    return body


def _int(query: Mapping[str, str], name: str, default: int, highest: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= highest:
        raise BadParameter(name)
    return int(raw)


def _day(query: Mapping[str, str], name: str) -> str:
    """A `YYYY-MM-DD` day; anything else (other date forms included) is a bad parameter."""
    raw = query.get(name, "")
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw).isoformat()
    except ValueError:
        pass
    raise BadParameter(name)


def list_page(listing: Callable[[str], Sequence[SimCall]], query: Mapping[str, str]) -> Body:
    """`GET /v1/cdrs`: the calls of one direction within [from, to] (days, UTC), newest first, one page.

    `listing(direction)` gives that direction's calls sorted by (date, index). Raises `BadParameter` for a
    missing/invalid `from`, `to` or `type`, a bad `disposition`, `page` or `per_page`. Filters:
    `disposition` (default all), `uuid`, `from_search`/`to_search` (substrings of the numbers).
    """
    first, last = _day(query, "from"), _day(query, "to")
    direction = LIST_TYPES.get(query.get("type", ""))
    if direction is None:
        raise BadParameter("type")
    disposition = query.get("disposition", "all").lower() or "all"
    if disposition not in DISPOSITION_FILTERS:
        raise BadParameter("disposition")
    page, per_page = _int(query, "page", 1, 1_000_000), _int(query, "per_page", 25, MAX_PER_PAGE)
    calls = listing(direction)
    dates = _Dates(calls)
    in_range = calls[bisect_left(dates, first):bisect_left(dates, last + "~")]  # "~" sorts after any time
    wanted_uuid, from_part, to_part = query.get("uuid"), query.get("from_search"), query.get("to_search")
    if disposition != "all" or wanted_uuid or from_part or to_part:
        in_range = [
            call for call in in_range
            if disposition in ("all", call.disposition)
            and (not wanted_uuid or call.call_id == wanted_uuid)
            and (not from_part or from_part.lstrip("+") in call.from_)
            and (not to_part or to_part.lstrip("+") in call.to)
        ]
    total = len(in_range)
    end = total - (page - 1) * per_page  # newest first: page 1 is the end of the ascending list
    items = in_range[max(0, end - per_page):max(0, end)][::-1]
    return {
        "items": [_list_item(call) for call in items],
        "pagination": {"current_page": page, "per_page": per_page, "total": total,
                       "total_pages": -(-total // per_page)},
    }


class _Dates(Sequence[str]):
    """The dates of sorted calls as a sequence `bisect` can search, without copying them."""

    def __init__(self, calls: Sequence[SimCall]) -> None:
        self._calls = calls

    def __len__(self) -> int:
        return len(self._calls)

    def __getitem__(self, i: Any) -> Any:
        return self._calls[i].date
