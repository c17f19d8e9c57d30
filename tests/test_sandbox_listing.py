"""The sandbox's listings as the spec has them: the CDR list, the streamed NDJSON export and the account's numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import httpx
import msgspec
import pytest

from sandbox.calls import account_numbers
from sandbox.config import SandboxConfig
from sandbox.server import serve
from sandbox.state import Sandbox
from tests.sandbox_helpers import check, component, response_schema
from workers.fetch.wavix import WavixClient

KEY = "wx_listing_key_0123456789"
# 23:50 UTC with 3 s spacing: 200 calls run from 30 June into 1 July.
CONFIG = SandboxConfig(seed=21, api_key=KEY, start="2026-06-30T23:50:00Z")


@pytest.fixture
async def run() -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    sandbox = Sandbox(CONFIG)
    sandbox.place(400)
    async with serve(sandbox) as url, httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield sandbox, client


def _wanted(sandbox: Sandbox, first: str, last: str, kind: str) -> set[str]:
    return {c.call_id for c in sandbox.calls() if first <= c.date[:10] <= last and c.type == kind}


async def _all_pages(client: httpx.AsyncClient, params: dict[str, str | int]) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    page = 1
    while True:
        body = (await client.get("/v1/cdrs", params={**params, "page": page})).json()
        items += body["items"]
        if page >= body["pagination"]["total_pages"]:
            return items
        page += 1


async def test_list_selects_whole_utc_days_inclusive_and_the_direction(run) -> None:
    """`from`/`to` pick whole UTC days on each CDR's date (both ends included); `type` picks the direction."""
    sandbox, client = run
    for first, last in (("2026-06-30", "2026-06-30"), ("2026-07-01", "2026-07-01"), ("2026-06-30", "2026-07-01")):
        for kind in ("placed", "received"):
            items = await _all_pages(client, {"from": first, "to": last, "type": kind, "per_page": 50,
                                               "disposition": "all"})
            assert {i["call_id"] for i in items} == _wanted(sandbox, first, last, kind), (first, last, kind)
    assert _wanted(sandbox, "2026-06-30", "2026-06-30", "placed") and _wanted(sandbox, "2026-07-01", "2026-07-01",
                                                                              "received")


async def test_list_paging_defaults_to_25_and_accepts_any_int32_per_page(run) -> None:
    """Without paging parameters a page has 25 items; per_page up to 2^31-1 is fine, 0 or 2^31 is 400."""
    sandbox, client = run
    base = {"from": "2026-06-30", "to": "2026-07-01", "type": "placed", "disposition": "all"}
    default = (await client.get("/v1/cdrs", params=base)).json()
    total = len(_wanted(sandbox, "2026-06-30", "2026-07-01", "placed"))
    assert len(default["items"]) == 25 and default["pagination"] == {
        "current_page": 1, "per_page": 25, "total": total, "total_pages": -(-total // 25)}
    huge = await client.get("/v1/cdrs", params={**base, "per_page": 2**31 - 1})
    assert huge.status_code == 200 and len(huge.json()["items"]) == total
    check(huge.content, response_schema("/v1/cdrs", "get", 200))
    beyond = await client.get("/v1/cdrs", params={**base, "page": default["pagination"]["total_pages"] + 1})
    assert beyond.status_code == 200 and beyond.json()["items"] == []
    for name, bad in (("per_page", "0"), ("per_page", str(2**31)), ("page", "-1"), ("page", "x")):
        response = await client.get("/v1/cdrs", params={**base, name: bad})
        assert response.status_code == 400, (name, bad)
        assert response.json() == {"success": False, "message": f"Missing or invalid parameter {name}"}
        check(response.content, response_schema("/v1/cdrs", "get", 400))


async def test_list_and_export_without_a_disposition_give_answered_calls_only(run) -> None:
    """A listing that does not send `disposition` gets answered calls only, the conservative reading of Wavix
    (`all` is the filter that lifts it): a client that forgets `disposition=all` misses its unanswered calls
    here as it would against Wavix. `disposition=all` (any case) gives every call."""
    sandbox, client = run
    for kind in ("placed", "received"):
        every = _wanted(sandbox, "2026-06-30", "2026-07-01", kind)
        answered = {c.call_id for c in sandbox.calls() if c.call_id in every and c.disposition == "answered"}
        assert answered and every - answered, "the sandbox should have answered and unanswered calls"
        base = {"from": "2026-06-30", "to": "2026-07-01", "type": kind, "per_page": 100}
        bare = await _all_pages(client, base)
        assert {i["call_id"] for i in bare} == answered, kind
        assert {i["disposition"] for i in bare} == {"answered"}
        for value in ("all", "ALL"):
            assert {i["call_id"] for i in await _all_pages(client, {**base, "disposition": value})} == every
        exported = await client.get("/v1/cdrs/all", params={k: v for k, v in base.items() if k != "per_page"})
        assert {msgspec.json.decode(line)["call_id"] for line in exported.content.splitlines()} == answered


async def test_our_wavix_client_lists_and_exports_every_disposition(run) -> None:
    """The workers' client (reconcile, backfill) sends `disposition=all`: against the conservative sandbox its
    list pages and its export still hold every call of the days, unanswered ones included."""
    sandbox, client = run
    wavix = WavixClient(client, cdr_path="/v1/cdrs/{call_id}")
    first, last = date(2026, 6, 30), date(2026, 7, 1)
    for kind in ("placed", "received"):
        every = _wanted(sandbox, "2026-06-30", "2026-07-01", kind)
        listed: set[str] = set()
        page = 1
        while True:
            cdrs = await wavix.list_cdrs(first, last, kind, page, 40)
            listed |= {msgspec.json.decode(item)["call_id"] for item in cdrs.items}
            if page >= cdrs.total_pages:
                break
            page += 1
        exported = {msgspec.json.decode(line)["call_id"] async for line in wavix.export_lines(first, last, kind)}
        assert listed == exported == every, kind
        assert {sandbox.get(c).disposition for c in every} - {"answered"}


async def test_export_streams_ndjson_one_valid_cdr_a_line(run) -> None:
    """`/v1/cdrs/all` answers `application/x-ndjson` in chunks, one spec `CDR` a line, every match once."""
    sandbox, client = run
    params = {"from": "2026-06-30", "to": "2026-07-01", "type": "received", "disposition": "all"}
    async with client.stream("GET", "/v1/cdrs/all", params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["transfer-encoding"] == "chunked" and "content-length" not in response.headers
        assert response.headers["etag"] and response.headers["last-modified"]
        chunks = [chunk async for chunk in response.aiter_raw()]
    assert len(chunks) > 1  # streamed, not one body
    lines = b"".join(chunks).splitlines()
    for line in lines:
        check(line, component("CDR"))
    ids = [msgspec.json.decode(line)["call_id"] for line in lines]
    assert len(ids) == len(set(ids)) and set(ids) == _wanted(sandbox, "2026-06-30", "2026-07-01", "received")


async def test_export_honours_filters_and_refuses_bad_parameters(run) -> None:
    """The export selects like the list (one day, a disposition); a missing `type` or a bad day is 400."""
    sandbox, client = run
    response = await client.get("/v1/cdrs/all", params={"from": "2026-07-01", "to": "2026-07-01", "type": "placed",
                                                         "disposition": "BUSY"})
    got = {msgspec.json.decode(line)["call_id"] for line in response.content.splitlines()}
    assert got == {c.call_id for c in sandbox.calls()
                   if c.date.startswith("2026-07-01") and c.type == "placed" and c.disposition == "busy"}
    no_type = {"from": "2026-07-01", "to": "2026-07-01"}
    bad_day = {"from": "1 July", "to": "2026-07-01", "type": "placed"}
    for params in (no_type, bad_day):
        bad = await client.get("/v1/cdrs/all", params=params)
        assert bad.status_code == 400 and bad.json()["success"] is False
    empty = await client.get("/v1/cdrs/all", params={"from": "2026-01-01", "to": "2026-01-02", "type": "placed"})
    assert empty.status_code == 200 and empty.content == b""


async def test_numbers_are_the_accounts_paged_and_valid(run) -> None:
    """`/v1/numbers` lists the account's numbers (`NumberListResponse`), pages them, and finds them by part."""
    _, client = run
    schema = response_schema("/v1/numbers", "get", 200)
    whole = await client.get("/v1/numbers")
    check(whole.content, schema)
    listed = [item["number"] for item in whole.json()["items"]]
    assert listed == [n.lstrip("+") for n in account_numbers(CONFIG.seed)]
    assert whole.json()["pagination"] == {"current_page": 1, "per_page": 25, "total": len(listed), "total_pages": 1}
    pages = [(await client.get("/v1/numbers", params={"page": p, "per_page": 3})).json() for p in (1, 2)]
    for page in pages:
        check(page, schema)
    assert [i["number"] for p in pages for i in p["items"]] == listed
    found = (await client.get("/v1/numbers", params={"search": "+" + listed[2][:6]})).json()["items"]
    assert listed[2] in [i["number"] for i in found]
    assert (await client.get("/v1/numbers", params={"per_page": "0"})).status_code == 400
    assert (await client.get("/v1/numbers", headers={"Authorization": "Bearer no"})).status_code == 401


async def test_direction_can_be_inferred_from_the_accounts_numbers(run) -> None:
    """A call from one of the listed numbers is outbound, to one is inbound, for every call the list holds."""
    sandbox, client = run
    own = {i["number"] for i in (await client.get("/v1/numbers")).json()["items"]}
    for kind, direction in (("placed", "outbound"), ("received", "inbound")):
        items = await _all_pages(client, {"from": "2026-06-30", "to": "2026-07-01", "type": kind, "per_page": 100,
                                           "disposition": "all"})
        assert items
        for item in items:
            inferred = "outbound" if str(item["from"]).lstrip("+") in own else "inbound"
            assert str(item["to" if inferred == "inbound" else "from"]).lstrip("+") in own
            assert inferred == direction == sandbox.get(str(item["call_id"])).direction  # type: ignore[union-attr]
