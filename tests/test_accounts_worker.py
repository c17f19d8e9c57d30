"""Accounts in the worker and the CLI: one client per account, its limit, run-time keys, reload, reconcile locks,
backfill per account, `accounts discover` and `accounts connect` against the sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from contract import redisurl
from contract.accounts import Account, Accounts, parse_accounts
from contract.settings import Settings
from sandbox.accounts import MASTER
from sandbox.config import SandboxConfig, SubAccountConfig
from sandbox.server import serve
from sandbox.state import Sandbox
from service.auth import Gate
from service.reload import reload as reload_receiver
from tests.conftest import REDIS_URL, forget
from wavix_events.accounts import connect, discover, fragment, shown
from workers.fetch.accounts import AccountClients, reload_accounts
from workers.fetch.backfill import run as backfill
from workers.fetch.reconcile import interval_of, lock_key, take_turn
from workers.fetch.subaccounts import AccountApi, SubAccount, refresh_keys, run_key_refresh
from workers.retry import Busy, Permanent, Transient

MASTER_KEY, SUB_KEY = "master-key-" + "m" * 16, "sub-key-" + "s" * 16
TOKEN = "alpha-token-" + "a" * 24
FILE = """\
accounts:
  - name: alpha
    api_key_env: T_ALPHA_KEY
    token_env: T_ALPHA_TOKEN
    max_in_flight: 2
  - name: sub
    sub_account: 7
    token_sha256: [{digest}]
    reconcile: false
"""
ENV = {"T_ALPHA_KEY": MASTER_KEY, "T_ALPHA_TOKEN": TOKEN}


@pytest.fixture
async def wavix() -> AsyncIterator[tuple[Sandbox, str]]:
    box = Sandbox(SandboxConfig(api_key=MASTER_KEY, seed=5, transcript_share=0.0, start="2026-03-01T10:00:00Z",
                                sub_accounts=(SubAccountConfig(id=7, name="Sub One", api_key=SUB_KEY),
                                              SubAccountConfig(id=8, name="Sub Two", api_key="k8-" + "x" * 16,
                                                               status="disabled"))))
    async with serve(box) as url:
        yield box, url


def _file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None = None) -> Path:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "accounts.yaml"
    path.write_text(text or FILE.format(digest="ab" * 32))
    return path


def _settings(url: str, path: Path, **more: str) -> Settings:
    return Settings.from_env({"ACCOUNTS_FILE": str(path), "WAVIX_API_URL": url, "WAVIX_MASTER_API_KEY": MASTER_KEY,
                              "WAVIX_CDR_PATH": "/v1/cdrs/{call_id}", **more})


async def test_each_account_gets_its_own_client_within_its_limit(wavix, tmp_path, monkeypatch) -> None:
    """A job's account names the client (its key reads its calls); a third request at `max_in_flight: 2` is
    `Busy` (the job steps aside), an unknown account is `Permanent`, a key not read yet is `Transient`."""
    box, url = wavix
    settings = _settings(url, _file(tmp_path, monkeypatch))
    clients = AccountClients(settings, parse_accounts(FILE.format(digest="ab" * 32), ENV, master_key=True),
                             concurrency=4)
    try:
        (call,) = box.place(1)
        with clients.turn("alpha") as first, clients.turn("alpha"):
            assert (await first.get_cdr(call.call_id)).id == call.call_id
            with pytest.raises(Busy), clients.turn("alpha"):
                pass
        with clients.turn("alpha"):  # the slots are given back
            pass
        with pytest.raises(Permanent, match='account "gone" is not configured'):
            clients.wavix("gone")
        with pytest.raises(Transient, match="no API key yet"):
            clients.wavix("sub")
        assert clients.limit(clients.account("sub")) == 2  # half of 4: several accounts
    finally:
        await clients.aclose()


async def test_sub_account_keys_come_from_the_master_listing_and_are_never_logged(
    wavix, tmp_path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`refresh_keys` reads every sub-account (disabled ones too) with the master key; the account given by
    `sub_account` alone then fetches its calls with its own key; a key Wavix rotates is used from the next read,
    on a new client. No key appears in a log line or in a `SubAccount`'s repr."""
    caplog.set_level(logging.DEBUG)
    box, url = wavix
    settings = _settings(url, _file(tmp_path, monkeypatch))
    clients = AccountClients(settings, parse_accounts(FILE.format(digest="ab" * 32), ENV, master_key=True),
                             concurrency=4)
    api = AccountApi.open(settings, MASTER_KEY)
    try:
        assert await refresh_keys(api, clients) == 2
        (call,) = box.place(1, account=7)
        assert (await clients.wavix("sub").get_cdr(call.call_id)).id == call.call_id
        before = clients.wavix("sub")
        rotated = msgspec.structs.replace(box.config.sub_accounts[0], api_key="rotated-" + "r" * 16)
        box.config = msgspec.structs.replace(box.config, sub_accounts=(rotated, *box.config.sub_accounts[1:]))
        await refresh_keys(api, clients)
        assert clients.wavix("sub") is not before
        assert (await clients.wavix("sub").get_cdr(call.call_id)).id == call.call_id
        listed = await api.sub_accounts(status=None)
        assert SUB_KEY not in repr(listed) and "rotated" not in repr(listed)
    finally:
        await api.aclose()
        await clients.aclose()
    logged = " ".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert SUB_KEY not in logged and "rotated-" not in logged and MASTER_KEY not in logged


async def test_reload_takes_a_valid_file_and_keeps_the_old_accounts_for_a_bad_one(
    tmp_path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGHUP's reload in the worker and in the receiver: a valid file is used at once (a new account's token
    is taken, a removed one's refused); a bad one is refused with its own one-line error and changes nothing."""
    caplog.set_level(logging.INFO)
    path = _file(tmp_path, monkeypatch)
    settings = _settings("https://api.wavix.test", path)
    monkeypatch.setenv("T_BETA_TOKEN", "beta-token-" + "b" * 24)
    clients = AccountClients(settings, Accounts([]), concurrency=4)
    gate = Gate(Accounts([]), (), ())
    assert reload_accounts(clients, settings) and reload_receiver(gate, settings)
    assert clients.accounts.names == ("alpha", "sub") and gate.account_for(TOKEN) is not None
    path.write_text("accounts:\n  - name: beta\n    api_key_env: T_ALPHA_KEY\n    tokn_env: T_BETA_TOKEN\n")
    assert not reload_accounts(clients, settings) and not reload_receiver(gate, settings)
    refused = [r for r in caplog.records if r.getMessage() == "accounts.reload_refused"]
    assert len(refused) == 2 and "accounts.yaml:4:" in repr(refused[0].__dict__)
    assert clients.accounts.names == ("alpha", "sub") and gate.account_for(TOKEN) is not None
    path.write_text("accounts:\n  - name: beta\n    api_key_env: T_ALPHA_KEY\n    token_env: T_BETA_TOKEN\n")
    assert reload_accounts(clients, settings) and reload_receiver(gate, settings)
    assert gate.account_for(TOKEN) is None and gate.account_for("beta-token-" + "b" * 24) is not None
    await clients.aclose()


async def test_each_account_reconciles_under_its_own_lock() -> None:
    """One account's turn does not take another's: each has its lock (the default account keeps the old key);
    `reconcile: false` turns an account's passes off."""
    prefix = f"test:{uuid.uuid4().hex}:"
    redis = redisurl.client(REDIS_URL)
    try:
        assert await take_turn(redis, prefix, 60, "alpha") and await take_turn(redis, prefix, 60, "beta")
        assert not await take_turn(redis, prefix, 60, "alpha")
        assert lock_key(prefix) == f"{prefix}reconcile:lock" and lock_key(prefix, "beta").endswith(":lock:beta")
    finally:
        await redisurl.close(redis)
        forget([prefix])
    loaded = parse_accounts(FILE.format(digest="ab" * 32), ENV, master_key=True)
    settings = Settings()
    alpha, sub = loaded.all
    assert interval_of(alpha, settings) == settings.reconcile_interval and interval_of(sub, settings) == 0


async def test_backfill_of_one_account_queues_its_calls_only(wavix, tmp_path, monkeypatch) -> None:
    """`backfill --account sub` exports with the sub-account's key (read from the listing) and queues its calls
    alone, under its own name; the master account's calls of the same days stay unqueued."""
    box, url = wavix
    prefix, queue = f"test:{uuid.uuid4().hex}:", f"test:queue:{uuid.uuid4().hex}"
    settings = _settings(url, _file(tmp_path, monkeypatch), REDIS_URL=REDIS_URL, KEY_PREFIX=prefix, QUEUE_NAME=queue)
    mine, theirs = box.place(5, account=7), box.place(5, account=MASTER)
    day = mine[0].date[:10]
    try:
        status = await asyncio.to_thread(backfill, settings, first=day, last=mine[-1].date[:10], account="sub",
                                         console=_quiet())
        assert status == 0
        redis = redisurl.client(REDIS_URL)
        try:
            queued = {k.decode() async for k in redis.scan_iter(match=f"arq:job:{prefix}call:*")}
        finally:
            await redisurl.close(redis)
        assert queued == {f"arq:job:{prefix}call:sub/{c.call_id}" for c in mine}
        assert not {c.call_id for c in theirs} & {k.rsplit("/", 1)[-1] for k in queued}
    finally:
        forget([prefix, queue], [queue])


def _quiet() -> Console:
    return Console(file=io.StringIO())


async def test_discover_prints_a_fragment_without_keys(wavix, tmp_path, monkeypatch) -> None:
    """`discover` lists enabled sub-accounts by default (--all: disabled too), names each from its own name,
    names the variables to set, leaves out those the file has, and prints no key; `--keys-at-run-time` leaves out
    `api_key_env`."""
    _, url = wavix
    settings = _settings(url, _file(tmp_path, monkeypatch))
    out = io.StringIO()
    assert await discover(settings, out) == 0
    assert 'sub-account 7 "Sub One" is account "sub" already' in out.getvalue() and "Sub Two" not in out.getvalue()
    out = io.StringIO()
    await discover(settings, out, every=True)
    text = out.getvalue()
    assert "- name: sub-two" in text and "sub_account: 8" in text and "api_key_env: SUB_TWO_KEY" in text
    assert "token_env: SUB_TWO_TOKEN" in text and SUB_KEY not in text and "k8-" not in text
    lines = fragment([SubAccount(3, "Acme", "enabled", "secret-key")], {}, keys_at_run_time=True, every=False)
    assert "api_key_env" not in lines and "secret-key" not in lines and "- name: acme" in lines


async def test_connect_points_both_webhooks_at_us_and_shows_what_was_there(wavix, tmp_path, monkeypatch) -> None:
    """`connect --dry-run` shows each event type's URL before and the one it would set, and sets nothing; then
    `connect` sets post-call and on-call to URL/webhooks/wavix/<token> with the account's own key; run again, it
    says unchanged. The token is shown by its last four characters only. An account known by `token_sha256`
    takes its token on stdin, checked against the digest."""
    box, url = wavix
    sub_token = "sub-token-" + "s" * 24
    path = _file(tmp_path, monkeypatch, FILE.format(digest=hashlib.sha256(sub_token.encode()).hexdigest()))
    settings = _settings(url, path)
    box.call_webhooks[MASTER] = {"post-call": "https://old.example/hook"}
    out = io.StringIO()
    await connect(settings, "alpha", "https://hooks.example", out, dry_run=True, stdin=io.StringIO())
    text = out.getvalue()
    assert "before: https://old.example/hook" in text and "before: (none)" in text and "would set" in text
    assert TOKEN not in text and f"https://hooks.example/webhooks/wavix/…{TOKEN[-4:]}" in text
    assert box.call_webhooks[MASTER] == {"post-call": "https://old.example/hook"}
    await connect(settings, "alpha", "https://hooks.example/", io.StringIO(), dry_run=False, stdin=io.StringIO())
    assert box.call_webhooks[MASTER] == {t: f"https://hooks.example/webhooks/wavix/{TOKEN}"
                                         for t in ("post-call", "on-call")}
    out = io.StringIO()
    await connect(settings, "alpha", "https://hooks.example", out, dry_run=False, stdin=io.StringIO())
    assert out.getvalue().count("unchanged") == 2
    await connect(settings, "sub", "https://hooks.example", io.StringIO(), dry_run=False,
                  stdin=io.StringIO(sub_token + "\n"))
    assert box.call_webhooks[7]["on-call"].endswith(sub_token)
    with pytest.raises(Exception, match="token_sha256 only"):
        await connect(settings, "sub", "https://hooks.example", io.StringIO(), dry_run=False,
                      stdin=io.StringIO("wrong-token-" + "w" * 20 + "\n"))
    assert shown("https://h/webhooks/wavix/abcdefghijklmnopqrstuvwxyz") == "https://h/webhooks/wavix/…wxyz"


async def test_a_reloaded_sub_account_gets_its_key_without_waiting_for_the_refresh_interval(
    wavix, tmp_path, monkeypatch
) -> None:
    """The worker's key task reads the listing at start; a reload that adds an account known by `sub_account`
    alone has it read again at once (not after ACCOUNT_KEYS_REFRESH), so the new account is served."""
    box, url = wavix
    settings = _settings(url, _file(tmp_path, monkeypatch), ACCOUNT_KEYS_REFRESH="3600")
    only_alpha = "accounts:\n  - name: alpha\n    api_key_env: T_ALPHA_KEY\n    token_env: T_ALPHA_TOKEN\n"
    clients = AccountClients(settings, parse_accounts(only_alpha, ENV), concurrency=4)
    stop = asyncio.Event()
    task = asyncio.create_task(run_key_refresh(clients, settings, stop=stop, min_gap_s=0.05))
    try:
        clients.use(parse_accounts(FILE.format(digest="ab" * 32), ENV, master_key=True))
        async with asyncio.timeout(5):
            await _until_keyed(clients, "sub")
        (call,) = box.place(1, account=7)
        assert (await clients.wavix("sub").get_cdr(call.call_id)).id == call.call_id
    finally:
        stop.set()
        await task
        await clients.aclose()


async def _until_keyed(clients: AccountClients, name: str) -> None:
    while not (clients.accounts.named(name) or Account(name="")).api_key:
        await asyncio.sleep(0.01)
