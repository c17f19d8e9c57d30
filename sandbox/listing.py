"""Wavix's listings: the CDR list, the CDR export (NDJSON) and the account's numbers, with their parameters.

| endpoint | answer (spec) | parameters |
|---|---|---|
| `GET /v1/cdrs` (older `/v1/cdr`) | `CDRListResponse`: `items` of `CDR`, `pagination` | `from`, `to`, `type` required |
| `GET /v1/cdrs/all` | `application/x-ndjson`, one `CDR` a line, streamed | the same as the list |
| `GET /v1/numbers` | `NumberListResponse`: `items` of `Number`, `doc_types`, `pagination` | `search`, paging |

`from`/`to` are whole UTC days, inclusive, matched against each CDR's `date`; `type` is `placed`
(outbound) or `received` (inbound). Optional filters: `disposition` (spec's `CallDisposition`, any case),
`uuid`, `from_search`/`to_search` (part of a number), `sip_trunk` (outbound only, as the spec says).
Without `disposition` (or with it empty) the list and the export give answered calls only: the spec names
no default, only `all` as "no disposition filter", and Wavix is taken to list answered calls unless asked
for `all`. The sandbox answers that conservative way so that a client which forgets `disposition=all`
misses its unanswered calls in its tests, as it would against Wavix, instead of passing them.
`page` and `per_page` default to 1 and 25; the spec names no maximum, only `int32`, so any whole number
from 1 to 2^31-1 is accepted and anything else is 400 `Missing or invalid parameter <name>` (the spec's
`BadRequestErrorResponse`, which the spec gives the list; the export documents no 400 and answers the
same). The spec does not say the order of items: the sandbox lists newest first and clients must not
rely on it. The export without `page`/`per_page` streams every match (that is what a backfill wants);
with either, it streams that page only, as its documented parameters allow.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from sandbox import numbers, wire
from sandbox.calls import SimCall

LIST_TYPES = {"placed": "outbound", "received": "inbound"}
DISPOSITION_FILTERS = frozenset({"answered", "noanswer", "busy", "failed", "all"})
DEFAULT_DISPOSITION = "answered"  # what a listing without `disposition` gets (see above)
INT32_MAX = 2**31 - 1
PER_PAGE = 25

Listing = Callable[[str], Sequence[SimCall]]  # direction -> its calls sorted by (date, index)


class BadParameter(Exception):
    """A parameter is missing or invalid; the message is Wavix's."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Missing or invalid parameter {name}")


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= INT32_MAX:
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


def matching(listing: Listing, query: Mapping[str, str]) -> list[SimCall]:
    """The calls the list and the export select, oldest first; raises `BadParameter`."""
    first, last = _day(query, "from"), _day(query, "to")
    direction = LIST_TYPES.get(query.get("type", ""))
    if direction is None:
        raise BadParameter("type")
    disposition = query.get("disposition", "").lower() or DEFAULT_DISPOSITION
    if disposition not in DISPOSITION_FILTERS:
        raise BadParameter("disposition")
    calls = listing(direction)
    dates = _Dates(calls)
    in_range = list(calls[bisect_left(dates, first):bisect_left(dates, last + "~")])  # "~" sorts after any time
    wanted_uuid, trunk = query.get("uuid"), query.get("sip_trunk") if direction == "outbound" else None
    from_part, to_part = query.get("from_search"), query.get("to_search")
    if disposition == "all" and not (wanted_uuid or from_part or to_part or trunk):
        return in_range
    return [
        call for call in in_range
        if disposition in ("all", call.disposition)
        and (not wanted_uuid or call.call_id == wanted_uuid)
        and (not trunk or call.sip_trunk == trunk)
        and (not from_part or from_part.lstrip("+") in call.from_)
        and (not to_part or to_part.lstrip("+") in call.to)
    ]


def _page(items: Sequence[Any], query: Mapping[str, str]) -> tuple[Sequence[Any], dict[str, int]]:
    """One page of `items` (newest last) newest first, and the spec's `Pagination` for it."""
    page, per_page = _int(query, "page", 1), _int(query, "per_page", PER_PAGE)
    total = len(items)
    end = total - (page - 1) * per_page  # newest first: page 1 is the end of the ascending list
    chosen = items[max(0, end - per_page):max(0, end)][::-1]
    return chosen, {"current_page": page, "per_page": per_page, "total": total,
                    "total_pages": -(-total // per_page)}


def list_page(listing: Listing, query: Mapping[str, str]) -> wire.Body:
    """`GET /v1/cdrs`: one page of the matching calls as `CDRListResponse`."""
    calls, pagination = _page(matching(listing, query), query)
    return {"items": [wire.list_item(call) for call in calls], "pagination": pagination}


def export_lines(listing: Listing, query: Mapping[str, str], batch: int = 100) -> Iterator[bytes]:
    """`GET /v1/cdrs/all`: the matching CDRs as NDJSON, `batch` lines per chunk. Validates before the first
    chunk is asked for (raises `BadParameter` from the call, not from iterating)."""
    calls = matching(listing, query)
    if "page" in query or "per_page" in query:
        calls = list(_page(calls, query)[0])
    else:
        calls.reverse()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(calls), batch):
            yield b"".join(wire.encode(wire.list_item(call)) + b"\n" for call in calls[start:start + batch])

    return chunks()


def numbers_page(seed: int, query: Mapping[str, str]) -> wire.Body:
    """`GET /v1/numbers`: the account's numbers as `NumberListResponse`, `search` matching part of one."""
    owned = numbers.owned(seed)
    search = query.get("search", "").lstrip("+")
    if search:
        owned = [n for n in owned if search in n["number"]]
    chosen, pagination = _page(owned[::-1], query)  # _page gives the end first: keep the account's order
    return {"items": list(chosen), "doc_types": numbers.DOC_TYPES, "pagination": pagination}


class _Dates(Sequence[str]):
    """The dates of sorted calls as a sequence `bisect` can search, without copying them."""

    def __init__(self, calls: Sequence[SimCall]) -> None:
        self._calls = calls

    def __len__(self) -> int:
        return len(self._calls)

    def __getitem__(self, i: Any) -> Any:
        return self._calls[i].date
