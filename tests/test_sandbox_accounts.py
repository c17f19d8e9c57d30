"""The sandbox's accounts over real loopback HTTP: sub-accounts listed as the spec says, calls and webhooks per key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.accounts import SubAccountConfig
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import serve
from sandbox.state import Sandbox
from tests.sandbox_helpers import check, response_schema

MASTER, ALPHA, BETA = "master-key-0123456789", "alpha-key-0123456789", "beta-key-0123456789"
SUBS = (SubAccountConfig(id=11, name="Alpha Sales", api_key=ALPHA),
        SubAccountConfig(id=12, name="Beta Support", api_key=BETA, status="disabled"))


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, str]]:
    box = Sandbox(SandboxConfig(api_key=MASTER, seed=3, sub_accounts=SUBS, transcript_share=0.0))
    async with serve(box) as url:
        yield box, url


def _client(url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=5.0)


async def test_the_master_key_lists_sub_accounts_with_their_keys_paged_and_filtered(sandbox) -> None:
    """`GET /v1/sub-organizations` answers the spec's `SubAccountsListResponse`, paged, `status` filtering;
    `/{id}` one `SubOrganizationResponse`; a sub-account's key lists none and reads none."""
    _, url = sandbox
    async with _client(url, MASTER) as master, _client(url, ALPHA) as alpha:
        every = await master.get("/v1/sub-organizations")
        assert every.status_code == 200
        check(every.content, response_schema("/v1/sub-organizations", "get", 200))
        assert [(s["id"], s["api_key"]) for s in every.json()["sub_organizations"]] == [(11, ALPHA), (12, BETA)]
        enabled = (await master.get("/v1/sub-organizations", params={"status": "enabled"})).json()
        assert [s["name"] for s in enabled["sub_organizations"]] == ["Alpha Sales"]
        second = (await master.get("/v1/sub-organizations", params={"per_page": 1, "page": 2})).json()
        assert [s["id"] for s in second["sub_organizations"]] == [12] and second["pagination"]["total_pages"] == 2
        one = await master.get("/v1/sub-organizations/12")
        check(one.content, response_schema("/v1/sub-organizations/{id}", "get", 200))
        assert (await master.get("/v1/sub-organizations", params={"status": "gone"})).status_code == 400
        assert (await alpha.get("/v1/sub-organizations")).json()["sub_organizations"] == []
        assert (await alpha.get("/v1/sub-organizations/11")).status_code == 404


async def test_each_key_reads_only_its_own_accounts_calls(sandbox) -> None:
    """A call belongs to one account: its key reads the CDR and lists it; another account's key gets 404 and
    does not list it, as Wavix answers for a call it does not know."""
    box, url = sandbox
    mine = box.place(2, account=11)
    theirs = box.place(1)
    day = mine[0].date[:10]
    async with _client(url, ALPHA) as alpha, _client(url, MASTER) as master:
        assert (await alpha.get(f"/v1/cdrs/{mine[0].call_id}")).status_code == 200
        assert (await alpha.get(f"/v1/cdrs/{theirs[0].call_id}")).status_code == 404
        assert (await master.get(f"/v1/cdrs/{mine[0].call_id}")).status_code == 404
        listed: set[str] = set()
        for kind in ("placed", "received"):
            page = await alpha.get("/v1/cdrs", params={"from": day, "to": day, "type": kind, "disposition": "all"})
            listed |= {item["call_id"] for item in page.json()["items"]}
        assert listed == {c.call_id for c in mine}


async def test_call_webhooks_are_set_listed_replaced_and_deleted_per_account(sandbox) -> None:
    """`/v1/calls/webhooks` as the spec says: POST 201 `CallWebhook`, GET the account's own list, a second POST
    replaces, DELETE by `event_type`; bad bodies are 400."""
    box, url = sandbox
    async with _client(url, ALPHA) as alpha, _client(url, BETA) as beta:
        empty = await alpha.get("/v1/calls/webhooks")
        assert empty.json() == []
        made = await alpha.post("/v1/calls/webhooks", json={"event_type": "post-call", "url": "https://a.test/one"})
        assert made.status_code == 201
        check(made.content, response_schema("/v1/calls/webhooks", "post", 201))
        await alpha.post("/v1/calls/webhooks", json={"event_type": "post-call", "url": "https://a.test/two"})
        await alpha.post("/v1/calls/webhooks", json={"event_type": "on-call", "url": "https://a.test/live"})
        listed = await alpha.get("/v1/calls/webhooks")
        check(listed.content, response_schema("/v1/calls/webhooks", "get", 200))
        assert {h["event_type"]: h["url"] for h in listed.json()} == {"post-call": "https://a.test/two",
                                                                     "on-call": "https://a.test/live"}
        assert (await beta.get("/v1/calls/webhooks")).json() == []
        assert (await alpha.delete("/v1/calls/webhooks", params={"event_type": "on-call"})).json() == {"success": True}
        assert box.call_webhooks[11] == {"post-call": "https://a.test/two"}
        assert (await alpha.delete("/v1/calls/webhooks", params={"event_type": "on-call"})).status_code == 422
        for bad in ({"event_type": "mid-call", "url": "https://x.test"}, {"event_type": "on-call", "url": "nope"},
                    {"event_type": "on-call"}):
            assert (await alpha.post("/v1/calls/webhooks", json=bad)).status_code == 400


async def test_faults_can_be_set_for_one_account(sandbox) -> None:
    """`set_faults(..., account)` spoils that account's requests only: the others answer as before."""
    box, url = sandbox
    call = box.place(1, account=11)[0]
    other = box.place(1)[0]
    box.set_faults(Faults(server_error=1.0), account=11)
    async with _client(url, ALPHA) as alpha, _client(url, MASTER) as master:
        assert (await alpha.get(f"/v1/cdrs/{call.call_id}")).status_code >= 500
        assert (await master.get(f"/v1/cdrs/{other.call_id}")).status_code == 200
