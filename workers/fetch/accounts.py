"""Accounts in the worker: the one place every stage asks for an account's Wavix client, numbers and limits.

    job (its Receipt names the account) -> `AccountClients.turn(name)` -> that account's `WavixClient`
    reconciliation, backfill                -> `AccountClients.wavix(name)` for each account in turn
    enrichment's direction                  -> `AccountClients.numbers(name)`, the account's own numbers

Each account gets its own `httpx.AsyncClient` (its key in the `Authorization` header, its API URL), built on
first use and rebuilt when its key or URL changes (a reload, a run-time key read from the master listing); all
of them share ONE transport, so the process keeps one connection pool as large as its concurrency whatever the
number of accounts, and 100 configured accounts that send nothing cost nothing but their entry.

Isolation: an account may have at most `max_in_flight` Wavix requests running in this process (the file's
`max_in_flight`, else ACCOUNT_MAX_IN_FLIGHT, else half of WORKER_CONCURRENCY when there are several accounts).
A job of an account at its limit does not wait in its job slot: `turn` raises `workers.retry.Busy` and the
job steps aside for a second (arq.Retry), so a Wavix outage that holds one account's requests until they time
out leaves the other half of the slots, at least, to the others. An account's 429s and 5xx are retried on its
own jobs' schedule (workers/retry.py) and never touch another's. A bad key (401) is logged as
`account.bad_key` (at most once a minute per account) and counted in `wavix_account_api_requests{status="401"}`;
its calls are dead-lettered naming the account, and replayed once the key is fixed. Keys are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from contract import logs
from contract.accounts import Account, Accounts, AccountsError, from_settings
from contract.settings import Settings
from workers.fetch.hints import OwnNumbers
from workers.fetch.http import Transport
from workers.fetch.wavix import OnResponse, WavixClient, create_http_client
from workers.operate.metrics import WorkerMetrics
from workers.retry import Busy, Permanent, Transient

log = logs.get("workers.fetch.accounts")

BAD_KEY_LOG_S = 60.0
NO_KEY_RETRY_S = 5.0  # a sub-account whose key the listing has not given yet is asked for again this soon
BUSY_WAIT_S = 1.0


class _Shared(httpx.AsyncBaseTransport):
    """The one transport under every account's client; closing a client leaves it open (`AccountClients.aclose`
    closes it)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        return None


@dataclass
class _Built:
    """One account's client as built: for the key and URL it was built with."""

    key: str = field(repr=False)
    url: str | None
    wavix: WavixClient
    numbers: OwnNumbers
    in_flight: int = 0


class AccountClients:
    """Every configured account's Wavix client and numbers; swapped whole by `use` (reload) and `use_keys`."""

    def __init__(self, settings: Settings, accounts: Accounts, *, concurrency: int,
                 transport: httpx.AsyncBaseTransport | None = None, metrics: WorkerMetrics | None = None,
                 on_response: OnResponse | None = None) -> None:
        size = max(concurrency, 1)
        self._settings, self._concurrency, self._metrics = settings, size, metrics
        self._transport = transport or Transport(limits=httpx.Limits(max_connections=size,
                                                                     max_keepalive_connections=size))
        self._shared = _Shared(self._transport)
        self._configured = accounts
        self._keys: dict[int, str] = {}
        self.accounts = accounts  # what the stages see: the configured accounts with their run-time keys
        self._built: dict[str, _Built] = {}
        self._on_response = on_response
        self._bad_key_logged: dict[str, float] = {}
        self.keys_wanted = asyncio.Event()  # set when an account waits for its key from the listing

    @property
    def on_response(self) -> OnResponse | None:
        return self._on_response

    @on_response.setter
    def on_response(self, hook: OnResponse | None) -> None:
        """The hook every client reports to (metrics, the call's record): clients built before are rebuilt."""
        self._on_response = hook
        self._built.clear()

    @property
    def configured(self) -> Accounts:
        """The accounts as the file (or the environment) gives them, without the run-time keys."""
        return self._configured

    def use(self, accounts: Accounts) -> None:
        """New accounts (a reload): an account whose key and URL stayed keeps its client (and its numbers)."""
        self._configured = accounts
        self._refresh()

    def use_keys(self, keys: dict[int, str]) -> None:
        """The sub-accounts' keys as the master listing gave them (workers/fetch/subaccounts.py)."""
        self._keys = dict(keys)
        self._refresh()

    def _refresh(self) -> None:
        self.accounts = self._configured.with_keys(self._keys)
        if any(a.key_at_run_time for a in self.accounts.all):
            self.keys_wanted.set()
        for name, built in list(self._built.items()):
            account = self.accounts.named(name)
            if account is None or (account.api_key, account.api_url) != (built.key, built.url):
                del self._built[name]  # in-flight requests finish on the old client: it shares the transport

    def account(self, name: str) -> Account:
        """The account; `Permanent` (a dead letter, replayable once it is back) when it is not configured."""
        account = self.accounts.named(name)
        if account is None:
            raise Permanent(f'account "{name}" is not configured (ACCOUNTS_FILE): its call cannot be fetched')
        return account

    def wavix(self, name: str) -> WavixClient:
        return self._client(name).wavix

    def numbers(self, name: str) -> OwnNumbers:
        return self._client(name).numbers

    def limit(self, account: Account) -> int:
        """The most Wavix requests of `account` at once in this process (0: no limit)."""
        if account.max_in_flight:
            return account.max_in_flight
        if self._settings.account_max_in_flight:
            return self._settings.account_max_in_flight
        return max(1, self._concurrency // 2) if len(self.accounts.all) > 1 else 0

    @contextlib.contextmanager
    def turn(self, name: str) -> Iterator[WavixClient]:
        """The account's client for one request; `Busy` when the account has its limit of requests running."""
        built = self._client(name)
        limit = self.limit(self.account(name))
        if limit and built.in_flight >= limit:
            raise Busy(f'account "{name}" has {built.in_flight} Wavix requests running (its limit)', BUSY_WAIT_S)
        built.in_flight += 1
        try:
            yield built.wavix
        finally:
            built.in_flight -= 1

    def _client(self, name: str) -> _Built:
        built = self._built.get(name)
        if built is not None:
            return built
        account = self.account(name)
        if not account.api_key:
            raise Transient(f'account "{name}": no API key yet (sub-account {account.sub_account} is not in the '
                            "master account's listing)", NO_KEY_RETRY_S)
        http = create_http_client(self._settings, self._concurrency, transport=self._shared,
                                  api_key=account.api_key, api_url=account.api_url)
        wavix = WavixClient.from_settings(http, self._settings, on_response=self._hook(name),
                                          account="" if len(self.accounts.all) == 1 else name)
        built = self._built[name] = _Built(account.api_key, account.api_url, wavix, OwnNumbers(wavix.own_numbers))
        return built

    def _hook(self, name: str) -> OnResponse:
        shared = self._on_response
        counter = self._metrics.account_api if self._metrics is not None else None

        def hook(endpoint: str, status: int | str, seconds: float) -> None:
            if shared is not None:
                shared(endpoint, status, seconds)
            if counter is not None:
                counter.labels(name, str(status)).inc()
            if status == 401:
                self._bad_key(name)

        return hook

    def _bad_key(self, name: str) -> None:
        now = time.monotonic()
        if now - self._bad_key_logged.get(name, -BAD_KEY_LOG_S) >= BAD_KEY_LOG_S:
            self._bad_key_logged[name] = now
            log.error("account.bad_key", account=name, why="Wavix answers 401 to this account's key: its calls are "
                      "dead-lettered until the key is fixed (then replay them)")

    async def aclose(self) -> None:
        self._built.clear()
        await self._transport.aclose()


def reload_accounts(clients: AccountClients, settings: Settings) -> bool:
    """SIGHUP: ACCOUNTS_FILE again, used only if valid (as the routing file: workers/deliver/reload.py). A new
    account is served from its next job; a removed one's waiting jobs are dead-lettered by their next try ("not
    configured"), to replay if it comes back."""
    if not settings.accounts_file:
        return False
    try:
        fresh = from_settings(settings)
    except AccountsError as e:
        log.error("accounts.reload_refused", reason=str(e), kept=",".join(clients.configured.names))
        return False
    clients.use(fresh)
    log.warning("accounts.reloaded", accounts=",".join(fresh.names))
    return True
