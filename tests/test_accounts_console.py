"""The console and `trace` show and filter by account (issue #26): calls of two accounts, fetched and published by
the real receiver and worker (tests/helpers/accounts.py), read back through the real console app (Litestar's
test client) and the real `wavix-events trace` command."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from console.app import ConsoleOptions, create_app
from console.asgi import account_names
from contract.events import COMPLETED, encode_event
from contract.jobs import DELIVER, PROCESS_CALL, Receipt
from contract.webhooks import Kind
from tests.helpers.accounts import TwoAccounts, two_accounts
from tests.pipeline import by_type
from wavix_events.cli import build_parser
from workers.deadletter import dead_letter
from workers.deliver.jobs import Delivery, encode_delivery
from workers.operate import dlq

TOKEN = "console-token-" + "c" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = AsyncTestClient[Litestar]


@asynccontextmanager
async def console_of(d: TwoAccounts) -> AsyncIterator[Client]:
    """The console on the deployment's settings, its accounts read from ACCOUNTS_FILE as `wavix-events console`
    reads them (names only); actions on, so the confirmation shows its form."""
    options = ConsoleOptions(token=TOKEN, allow_actions=True)
    app = create_app(d.p.settings, options, ("redis",), account_names(d.p.settings))
    async with AsyncTestClient(app=app) as client:
        yield client


def listed(html: str) -> dict[str, str]:
    """The calls page's rows: call id -> the account its row names."""
    return dict(re.findall(r'<tr class="call[^"]*" data-call="([^"]+)"[^>]*data-account="([^"]*)"', html))


@pytest.fixture
async def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TwoAccounts]:
    async with two_accounts(tmp_path, monkeypatch) as d:
        yield d


async def test_the_calls_page_shows_each_calls_account_and_filters_by_it(deployment: TwoAccounts) -> None:
    """Calls of alpha and beta are listed with their account, and the page offers both accounts; `?account=beta`
    lists beta's calls only, `?account=alpha` alpha's only; an account that is neither configured nor among the
    calls is a 400 that names it and the accounts there are, listing every call (never a 500). A search by number
    lists the call with its account too."""
    d = deployment
    alpha, beta = await d.send("alpha", 3), await d.send("beta", 2)
    await d.p.run_worker()
    async with console_of(d) as console:
        page = await console.get("/calls?minutes=600", headers=AUTH)
        assert page.status_code == 200
        everything = listed(page.text)
        assert everything == {**{c.call_id: "alpha" for c in alpha}, **{c.call_id: "beta" for c in beta}}
        assert '<option value="alpha"' in page.text and '<option value="beta"' in page.text

        only_beta = await console.get("/calls?minutes=600&account=beta", headers=AUTH)
        assert only_beta.status_code == 200 and listed(only_beta.text) == {c.call_id: "beta" for c in beta}
        assert '<option value="beta" selected' in only_beta.text
        only_alpha = await console.get("/calls?minutes=600&account=alpha", headers=AUTH)
        assert listed(only_alpha.text) == {c.call_id: "alpha" for c in alpha}

        unknown = await console.get("/calls?minutes=600&account=zeta", headers=AUTH)
        assert unknown.status_code == 400
        assert "account: &#39;zeta&#39; is not one of alpha, beta; showing any" in unknown.text, unknown.text
        assert listed(unknown.text) == everything

        number = alpha[0].to if alpha[0].direction == "outbound" else alpha[0].from_
        found = await console.get(f"/search?q={number.lstrip('+')}", headers=AUTH)
        rows = dict(re.findall(r'<tr class="call" data-call="([^"]+)" data-account="([^"]*)"', found.text))
        assert rows.get(alpha[0].call_id) == "alpha", found.text


def card(html: str, name: str) -> str:
    """An overview card's figure (`card-calls`, `card-dead`, ...)."""
    found = re.search(rf'id="card-{name}"><b>([^<]*)</b>', html)
    assert found, html
    return found.group(1)


async def test_the_overview_counts_one_accounts_calls_and_dead_letters(deployment: TwoAccounts) -> None:
    """Three alpha calls, two beta calls and a dead letter of alpha's: the overview counts five calls and the
    letter; `?account=beta` two calls and no letter, and says which account it shows; an unknown account is a
    400 naming the configured ones, showing every account's figures."""
    d = deployment
    await d.send("alpha", 3)
    await d.send("beta", 2)
    await d.p.run_worker()
    receipt = Receipt(kind=Kind.POST_CALL, call_id="CA-alpha-dead", event="", received_at_ms=int(time.time() * 1000),
                      body=b"{}", account="alpha")
    await dead_letter(d.p.redis, d.p.settings.dead_letter_stream, kind=PROCESS_CALL, reason="wavix: 500 (test)",
                      attempts=5, payload=msgspec.msgpack.encode(receipt), call_id=receipt.call_id)
    async with console_of(d) as console:
        every = await console.get("/?minutes=600", headers=AUTH)
        assert (card(every.text, "calls"), card(every.text, "dead")) == ("5", "1")
        beta = await console.get("/?minutes=600&account=beta", headers=AUTH)
        assert beta.status_code == 200 and (card(beta.text, "calls"), card(beta.text, "dead")) == ("2", "0")
        assert "· account beta" in beta.text and '<option value="beta" selected' in beta.text
        alpha = await console.get("/?minutes=600&account=alpha", headers=AUTH)
        assert (card(alpha.text, "calls"), card(alpha.text, "dead")) == ("3", "1")
        unknown = await console.get("/?minutes=600&account=zeta", headers=AUTH)
        assert unknown.status_code == 400 and card(unknown.text, "calls") == "5"
        assert "account: &#39;zeta&#39; is not one of alpha, beta" in unknown.text


async def test_a_calls_page_and_trace_name_its_account(deployment: TwoAccounts) -> None:
    """A call's page names its account (beta's call: beta) and shows the webhook its account's token posted;
    `wavix-events trace CALL` says the account on its first line, and `trace --json` has it as `account`."""
    d = deployment
    (call,) = await d.send("beta", 1)
    await d.p.run_worker()
    async with console_of(d) as console:
        page = await console.get(f"/calls/{call.call_id}", headers=AUTH)
    assert page.status_code == 200
    assert re.search(r'<p id="account">Account <a href="/calls\?account=beta">beta</a>', page.text), page.text
    assert 'data-step="webhook"' in page.text, "the webhook list of beta's call is read"

    status, out = await trace_command(d, call.call_id)
    assert status == 0 and out.splitlines()[0] == f"call {call.call_id} (account beta)", out
    status, out = await trace_command(d, call.call_id, "--json")
    timeline = json.loads(out)
    assert status == 0 and timeline["account"] == "beta" and timeline["summary"]["account"] == "beta"
    assert {s["fields"]["account"] for s in timeline["steps"] if s["step"] == "webhook"} == {"beta"}


async def test_dead_letters_show_and_filter_by_account(deployment: TwoAccounts) -> None:
    """A job's letter is its receipt's account, a delivery's letter its event's: `?account=beta` on the dead
    letters page lists beta's letter only, the confirmation of "replay all matching" counts it alone, and an
    unknown account is a 400 saying so."""
    d = deployment
    (beta_call,) = await d.send("beta", 1)
    await d.p.run_worker()
    (event,) = by_type(await d.p.events(), COMPLETED)[beta_call.call_id]
    stream, now = d.p.settings.dead_letter_stream, int(time.time() * 1000)
    receipt = Receipt(kind=Kind.POST_CALL, call_id="CA-alpha-dead", event="", received_at_ms=now, body=b"{}",
                      account="alpha")
    await dead_letter(d.p.redis, stream, kind=PROCESS_CALL, reason="wavix: 500 (test)", attempts=5,
                      payload=msgspec.msgpack.encode(receipt), call_id=receipt.call_id)
    delivery = Delivery(destination="redis", call_id=event.subject, event_id=event.id, event=encode_event(event),
                        first_at_ms=now)
    beta_letter = await dead_letter(d.p.redis, stream, kind=DELIVER, reason="redis: refused (test)", attempts=8,
                                    payload=encode_delivery(delivery), call_id=event.subject)
    async with console_of(d) as console:
        every = await console.get("/dead-letters", headers=AUTH)
        rows = dict(re.findall(r'data-id="([^"]+)" data-kind="[^"]*" data-account="([^"]*)"', every.text))
        assert sorted(rows.values()) == ["alpha", "beta"] and rows[beta_letter] == "beta"

        beta = await console.get("/dead-letters?account=beta", headers=AUTH)
        assert re.findall(r'<tr class="letter"[^>]*data-id="([^"]+)"', beta.text) == [beta_letter]
        confirm = await console.get("/dead-letters/confirm?action=replay&account=beta", headers=AUTH)
        assert 'data-count="1"' in confirm.text and 'name="account" value="beta"' in confirm.text

        unknown = await console.get("/dead-letters?account=zeta", headers=AUTH)
        assert unknown.status_code == 400 and "account: &#39;zeta&#39; is not one of" in unknown.text

    # `wavix-events dlq list --account beta` selects the same letter, by the same reading (workers/operate/dlq.py)
    beta_only = await dlq.select(d.p.redis, stream, dlq.Filters(account="beta"), 100)
    assert [letter.id for letter in beta_only] == [beta_letter]
    every_letter = await dlq.select(d.p.redis, stream, dlq.Filters(), 100)
    assert sorted(dlq.account_of(letter) for letter in every_letter) == ["alpha", "beta"]
    assert build_parser().parse_args(["dlq", "list", "--account", "beta"]).account == "beta"


async def trace_command(d: TwoAccounts, call_id: str, *more: str) -> tuple[int, str]:
    """`wavix-events trace` as an operator runs it, with the deployment's settings and no account's secrets."""
    env = {k: v for k, v in d.p.env().items() if v}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wavix_events.cli", "trace", call_id, *more,
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode() + err.decode()
