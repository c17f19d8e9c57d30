"""The sandbox's Wavix API over real loopback HTTP: auth, CDRs, transcripts, the list, recordings, faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import serve
from sandbox.state import Sandbox
from tests.sandbox_helpers import raw_get

KEY = "wx_test_0123456789abcdef"
START = "2026-07-01T09:00:00Z"


class Running:
    def __init__(self, sandbox: Sandbox, url: str, client: httpx.AsyncClient) -> None:
        self.sandbox, self.url, self.client = sandbox, url, client


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Starts sandboxes with the given config on free loopback ports; all are stopped afterwards."""
    async with AsyncExitStack() as exits:

        async def start(**config: Any) -> Running:
            sandbox = Sandbox(SandboxConfig(**{"api_key": KEY, "seed": 7, "start": START, **config}))
            url = await exits.enter_async_context(serve(sandbox))
            client = await exits.enter_async_context(
                httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5.0)
            )
            return Running(sandbox, url, client)

        yield start


async def test_cdr_is_served_in_both_path_families(make) -> None:
    """`/v1/cdrs/{id}` and the older `/v1/cdr/{uuid}` answer the same CDR, with both id names."""
    run = await make()
    call = run.sandbox.place(3)[1]
    new = await run.client.get(f"/v1/cdrs/{call.call_id}")
    old = await run.client.get(f"/v1/cdr/{call.call_id}")
    assert new.status_code == old.status_code == 200
    assert new.json() == old.json()
    body = new.json()
    assert body["call_id"] == body["uuid"] == call.call_id
    assert body["disposition"] == call.disposition and body["charge"] == call.charge
    assert "transcription" not in body


async def test_show_transcription_adds_a_reference_whose_url_carries_the_key(make) -> None:
    """With `show_transcription=true` a ready transcript is referenced as `{uuid, url?appid=KEY}`; the url works."""
    run = await make()
    call = next(c for c in run.sandbox.place(30) if c.transcript is not None)
    body = (await run.client.get(f"/v1/cdrs/{call.call_id}", params={"show_transcription": "true"})).json()
    assert call.transcript is not None
    assert body["transcription"]["uuid"] == call.transcript.uuid
    url = body["transcription"]["url"]
    assert parse_qs(urlsplit(url).query)["appid"] == [KEY]
    async with httpx.AsyncClient() as anonymous:  # the url alone authenticates, as Wavix's does
        followed = await anonymous.get(url)
    assert followed.status_code == 200 and followed.json()["call_uuid"] == call.call_id


async def test_wrong_or_missing_key_answers_401_with_wavix_body(make) -> None:
    """A wrong or missing Bearer key gets 401 and `{"success": false, "message", "error": true}`."""
    run = await make()
    call = run.sandbox.place(1)[0]
    wrong = await run.client.get(f"/v1/cdrs/{call.call_id}", headers={"Authorization": "Bearer nope"})
    missing = await run.client.get(f"/v1/cdrs/{call.call_id}", headers={"Authorization": ""})
    for response in (wrong, missing):
        assert response.status_code == 401
        assert response.json() == {"success": False, "message": "Unauthorized", "error": True}


async def test_unknown_call_answers_404_with_wavix_body(make) -> None:
    """A call the sandbox never placed is 404 `{"success": false, "message": ...}` on every route."""
    run = await make()
    for path in ("/v1/cdrs/x-1", "/v1/cdr/x-1", "/v1/cdrs/x-1/transcription", "/v1/recordings/x-1"):
        response = await run.client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"success": False, "message": "Record not found"}


async def test_transcript_answers_404_until_the_delay_after_the_first_webhook(make) -> None:
    """The transcript is 404 (and the CDR's reference null) until `transcript_delay_s` after `mark_sent`."""
    run = await make(transcript_delay_s=0.4, transcript_failed_share=0.0)
    call = next(c for c in run.sandbox.place(30) if c.transcript is not None)
    run.sandbox.mark_sent(call.call_id)
    for path in (f"/v1/cdrs/{call.call_id}/transcription", f"/v1/cdr/{call.call_id}/transcription"):
        assert (await run.client.get(path)).status_code == 404
    cdr = await run.client.get(f"/v1/cdrs/{call.call_id}", params={"show_transcription": "true"})
    assert cdr.json()["transcription"] is None
    await asyncio.sleep(0.45)
    ready = await run.client.get(f"/v1/cdr/{call.call_id}/transcription")
    assert ready.status_code == 200 and ready.json()["status"] == "completed"
    assert ready.json()["turns"] and all({"type", "s", "e", "text"} <= set(t) for t in ready.json()["turns"])


async def test_failed_share_makes_transcripts_fail(make) -> None:
    """With `transcript_failed_share=1` every transcript answers `status: failed` with no turns."""
    run = await make(transcript_failed_share=1.0)
    with_transcript = [c for c in run.sandbox.place(40) if c.transcript is not None]
    assert with_transcript
    for call in with_transcript:
        body = (await run.client.get(f"/v1/cdrs/{call.call_id}/transcription")).json()
        assert body["status"] == "failed" and body["turns"] == []


async def test_calls_without_transcript_never_have_one(make) -> None:
    """Unanswered calls (and those not picked for transcription) answer 404 for their transcript."""
    run = await make()
    calls = run.sandbox.place(30)
    for call in (c for c in calls if c.transcript is None):
        assert (await run.client.get(f"/v1/cdrs/{call.call_id}/transcription")).status_code == 404


async def test_list_requires_from_to_and_type(make) -> None:
    """Missing or malformed `from`, `to` or `type` is 400 with Wavix's body naming the parameter."""
    run = await make()
    good = {"from": "2026-07-01", "to": "2026-07-01", "type": "placed"}
    for name, bad in (("from", None), ("to", None), ("type", None), ("from", "01/07/2026"), ("type", "both")):
        params = {k: v for k, v in {**good, name: bad}.items() if v is not None}
        response = await run.client.get("/v1/cdrs", params=params)
        assert response.status_code == 400
        assert response.json() == {"success": False, "message": f"Missing or invalid parameter {name}"}


async def test_list_filters_by_direction_and_paginates(make) -> None:
    """`type` picks a direction; pages of `per_page` cover every call once; `/v1/cdr` answers alike."""
    run = await make()
    calls = run.sandbox.place(60)
    placed = {c.call_id for c in calls if c.direction == "outbound"}
    seen: list[str] = []
    page = 1
    while True:
        params = {"from": "2026-07-01", "to": "2026-07-02", "type": "placed", "disposition": "all", "page": page,
                  "per_page": 7}
        body = (await run.client.get("/v1/cdrs", params=params)).json()
        assert body["pagination"] == {"current_page": page, "per_page": 7, "total": len(placed),
                                      "total_pages": -(-len(placed) // 7)}
        dates = [item["date"] for item in body["items"]]
        assert dates == sorted(dates, reverse=True)  # newest first
        seen += [item["call_id"] for item in body["items"]]
        if page >= body["pagination"]["total_pages"]:
            break
        page += 1
    assert sorted(seen) == sorted(placed) and len(seen) == len(set(seen))
    old = await run.client.get("/v1/cdr", params={"from": "2026-07-01", "to": "2026-07-02", "type": "received",
                                                  "disposition": "all"})
    assert {i["call_id"] for i in old.json()["items"]} <= {c.call_id for c in calls if c.direction == "inbound"}
    outside = await run.client.get("/v1/cdrs", params={"from": "2026-06-01", "to": "2026-06-30", "type": "placed"})
    assert outside.json()["pagination"]["total"] == 0


async def test_recording_redirects_to_a_file(make) -> None:
    """`GET /v1/recordings/{id}` of an answered call is a redirect whose Location serves audio."""
    run = await make()
    call = next(c for c in run.sandbox.place(20) if c.answered)
    response = await run.client.get(f"/v1/recordings/{call.call_id}")
    assert response.status_code == 302
    audio = await run.client.get(response.headers["location"])
    assert audio.status_code == 200 and audio.content.startswith(b"RIFF")
    unanswered = next(c for c in run.sandbox.calls() if not c.answered)
    assert (await run.client.get(f"/v1/recordings/{unanswered.call_id}")).status_code == 404


async def test_rate_limit_faults_with_and_without_retry_after(make) -> None:
    """A 429 share of 1 answers 429 with `Retry-After`; the bare variant answers 429 without it."""
    run = await make()
    call = run.sandbox.place(1)[0]
    run.sandbox.set_faults(Faults(rate_limit=1.0, retry_after_s=7))
    limited = await run.client.get(f"/v1/cdrs/{call.call_id}")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["success"] is False
    run.sandbox.set_faults(Faults(rate_limit_bare=1.0))
    bare = await run.client.get(f"/v1/cdrs/{call.call_id}")
    assert bare.status_code == 429 and "retry-after" not in bare.headers


async def test_server_error_faults_are_500_502_or_503(make) -> None:
    """A 5xx share of 1 answers only 500, 502 and 503, and over enough requests all three."""
    run = await make(faults=Faults(server_error=1.0))
    call = run.sandbox.place(1)[0]
    statuses = {(await run.client.get(f"/v1/cdrs/{call.call_id}")).status_code for _ in range(40)}
    assert statuses == {500, 502, 503}


async def test_slow_fault_outlasts_the_client_timeout(make) -> None:
    """A slow answer takes `slow_s`, so a client with a shorter timeout times out."""
    run = await make(faults=Faults(slow=1.0, slow_s=2.0))
    call = run.sandbox.place(1)[0]
    with pytest.raises(httpx.ReadTimeout):
        await run.client.get(f"/v1/cdrs/{call.call_id}", timeout=0.2)


async def test_drop_fault_closes_the_connection_without_answering(make) -> None:
    """A dropped request gets no HTTP answer at all: the client sees the connection closed."""
    run = await make(faults=Faults(drop=1.0))
    call = run.sandbox.place(1)[0]
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await run.client.get(f"/v1/cdrs/{call.call_id}")
    run.sandbox.set_faults(Faults())
    assert (await run.client.get(f"/v1/cdrs/{call.call_id}")).status_code == 200  # the client recovers


async def test_forbidden_fault_answers_403_not_provisioned_for_transcripts_only(make) -> None:
    """The 403 share spoils transcript requests with "not provisioned"; CDRs are unaffected."""
    run = await make(faults=Faults(forbidden_transcript=1.0))
    call = next(c for c in run.sandbox.place(30) if c.transcript is not None)
    forbidden = await run.client.get(f"/v1/cdrs/{call.call_id}/transcription")
    assert forbidden.status_code == 403
    assert forbidden.json() == {"success": False, "message": "The service is not provisioned for your account."}
    assert (await run.client.get(f"/v1/cdrs/{call.call_id}")).status_code == 200


async def test_fault_shares_are_honoured_roughly(make) -> None:
    """With 30% 429s, about 30% of 300 requests are 429 and the rest succeed."""
    run = await make(faults=Faults(rate_limit=0.3))
    call = run.sandbox.place(1)[0]
    statuses = [(await run.client.get(f"/v1/cdrs/{call.call_id}")).status_code for _ in range(300)]
    assert 60 <= statuses.count(429) <= 120 and statuses.count(200) == 300 - statuses.count(429)


async def test_base_latency_delays_answers_without_blocking(make) -> None:
    """With 200 ms latency one answer takes >= 200 ms, yet 200 concurrent ones finish within 1 s."""
    run = await make(faults=Faults(latency_s=0.2))
    call = run.sandbox.place(1)[0]
    began = time.monotonic()
    assert (await run.client.get(f"/v1/cdrs/{call.call_id}")).status_code == 200
    assert time.monotonic() - began >= 0.2
    began = time.monotonic()
    statuses = await asyncio.gather(*(raw_get(run.url, f"/v1/cdrs/{call.call_id}", KEY) for _ in range(200)))
    assert statuses == [200] * 200
    assert time.monotonic() - began < 1.0


async def test_admin_lists_and_places_calls(make) -> None:
    """`POST /_sandbox/calls?count=N` places N calls; `GET /_sandbox/calls` lists all with their facts."""
    run = await make()
    run.sandbox.place(2)
    placed = await run.client.post("/_sandbox/calls", params={"count": 3})
    assert placed.status_code == 201 and len(placed.json()["calls"]) == 3
    listed = (await run.client.get("/_sandbox/calls")).json()["calls"]
    assert [c["index"] for c in listed] == [0, 1, 2, 3, 4]
    assert {"call_id", "direction", "disposition", "from", "to", "charge", "transcript"} <= set(listed[4])
    assert (await run.client.get(f"/v1/cdrs/{listed[4]['call_id']}")).status_code == 200


async def test_admin_replaces_faults_and_counts_requests(make) -> None:
    """`PUT /_sandbox/faults` changes the shares at once; `/_sandbox/stats` counts answers and faults."""
    run = await make()
    call = run.sandbox.place(1)[0]
    put = await run.client.put("/_sandbox/faults", json={"server_error": 1.0})
    assert put.status_code == 200 and put.json()["server_error"] == 1.0
    assert (await run.client.get(f"/v1/cdrs/{call.call_id}")).status_code in (500, 502, 503)
    bad = await run.client.put("/_sandbox/faults", json={"drop": 2})
    assert bad.status_code == 422
    stats = (await run.client.get("/_sandbox/stats")).json()["requests"]
    assert stats["fault 5xx"] == 1


async def test_legacy_transcripts_use_the_older_docs_shape_when_asked(make) -> None:
    """`legacy_transcript_share=1` serves turns with `phone_number` and no score, summary or call fields."""
    run = await make(legacy_transcript_share=1.0, transcript_failed_share=0.0)
    call = next(c for c in run.sandbox.place(30) if c.transcript is not None)
    body = (await run.client.get(f"/v1/cdrs/{call.call_id}/transcription")).json()
    assert body["turns"] and all("phone_number" in t and "type" not in t for t in body["turns"])
    assert not {"call_date", "call_uuid", "call_score", "call_summary"} & set(body)
    assert body["status"] == "completed" and body["uuid"] == call.transcript.uuid  # type: ignore[union-attr]


async def test_wrong_cdr_fault_answers_200_with_another_calls_cdr(make) -> None:
    """With `wrong_cdr=1` a CDR request for call A is a 200 whose body is another placed call's CDR."""
    run = await make(faults=Faults(wrong_cdr=1.0))
    calls = run.sandbox.place(5)
    for call in calls:
        response = await run.client.get(f"/v1/cdrs/{call.call_id}")
        assert response.status_code == 200
        other = response.json()["call_id"]
        assert other != call.call_id and other in {c.call_id for c in calls}
        assert response.json()["uuid"] == other
    assert run.sandbox.requests["fault wrong-cdr"] == 5
    alone = (await make(seed=8, faults=Faults(wrong_cdr=1.0))).sandbox
    only = alone.place(1)[0]
    assert alone.neighbours(only) == []


async def test_oversized_cdr_fault_answers_200_over_one_mib(make) -> None:
    """With `oversized_cdr=1` the CDR is right but the body is over 1 MiB, padded by an unknown field."""
    run = await make(faults=Faults(oversized_cdr=1.0))
    call = run.sandbox.place(1)[0]
    response = await run.client.get(f"/v1/cdrs/{call.call_id}")
    assert response.status_code == 200 and len(response.content) > 1024 * 1024
    body = response.json()
    assert body["call_id"] == call.call_id and len(body.pop("debug_trace")) > 1024 * 1024
    other = await run.client.get("/v1/cdrs", params={"from": "2026-07-01", "to": "2026-07-01", "type": call.type})
    assert other.status_code == 200 and len(other.content) < 10_000  # CDR requests only


async def test_cdr_faults_are_set_by_put_and_share_a_band(make) -> None:
    """`PUT /_sandbox/faults` takes `wrong_cdr`/`oversized_cdr`; together over 1 is 422; shares hold roughly."""
    run = await make()
    calls = run.sandbox.place(3)
    put = await run.client.put("/_sandbox/faults", json={"wrong_cdr": 0.5, "oversized_cdr": 0.5})
    assert put.status_code == 200 and put.json()["wrong_cdr"] == 0.5
    assert (await run.client.put("/_sandbox/faults", json={"wrong_cdr": 0.6, "oversized_cdr": 0.6})).status_code == 422
    run.sandbox.set_faults(Faults(wrong_cdr=0.3))
    wrong = 0
    for _ in range(200):
        wrong += (await run.client.get(f"/v1/cdrs/{calls[0].call_id}")).json()["call_id"] != calls[0].call_id
    assert 30 <= wrong <= 90


async def test_stats_and_calls_say_which_calls_lose_their_webhooks(make) -> None:
    """`/_sandbox/calls` marks each call's `webhooks_dropped`; `/_sandbox/stats` counts them."""
    run = await make(drop_webhooks_share=0.3)
    run.sandbox.place(50)
    calls = (await run.client.get("/_sandbox/calls")).json()["calls"]
    dropped = [c["call_id"] for c in calls if c["webhooks_dropped"]]
    assert 5 <= len(dropped) <= 25 and all({"direction", "account_number"} <= set(c) for c in calls)
    stats = (await run.client.get("/_sandbox/stats")).json()
    assert stats["webhooks"] == {"calls": 50, "dropped_calls": len(dropped)}
    for call_id in dropped[:3]:  # the call exists in the API all the same
        assert (await run.client.get(f"/v1/cdrs/{call_id}")).status_code == 200
