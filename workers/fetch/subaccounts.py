"""Sub-accounts and call webhooks: what the master key lists, and where an account's call webhooks point.

    GET    /v1/sub-organizations?status=&page=&per_page=   (the master key) every sub-account, with its own key
    GET    /v1/calls/webhooks                              (the account's key) [{event_type, url}]
    POST   /v1/calls/webhooks {event_type, url}            points one event type (post-call, on-call) at a URL
    DELETE /v1/calls/webhooks?event_type=                  removes it

`wavix-events accounts discover` and `connect` (wavix_events/accounts.py) use `AccountApi`; a worker with
WAVIX_MASTER_API_KEY and accounts given by `sub_account:` alone runs `run_key_refresh`: the listing, read at
start and every ACCOUNT_KEYS_REFRESH seconds (every 30 s while it fails), hands each sub-account's key to
`AccountClients.use_keys`, so a sub-account added to the accounts file (and SIGHUP) is served with no key in
the environment, and a key Wavix rotates is picked up. Every listed key is a secret: a `SubAccount` does not
show it in its repr, and nothing here logs it; logs name the sub-account's id and how many keys were read.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import httpx
import msgspec

from contract import logs
from contract.settings import Settings
from contract.wavix import decode_error
from workers.fetch.accounts import AccountClients
from workers.fetch.wavix import create_http_client

log = logs.get("workers.fetch.subaccounts")

PER_PAGE = 100
MAX_PAGES = 1000
RETRY_S = 30.0
EVENT_TYPES = ("post-call", "on-call")


class ApiError(Exception):
    """Wavix refused or failed a request; `status` 0 when it never answered. The text names no secret."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(f"{what} -> {status or 'no answer'}: {message}")
        self.status = status


@dataclass(frozen=True)
class SubAccount:
    """One listed sub-account; `api_key` is a secret and stays out of its repr."""

    id: int
    name: str
    status: str
    api_key: str = field(repr=False)


class _Item(msgspec.Struct, frozen=True):
    id: int
    name: str = ""
    status: str = ""
    api_key: str = ""


class _Page(msgspec.Struct, frozen=True):
    sub_organizations: list[_Item] = msgspec.field(default_factory=list)
    pagination: dict[str, object] = msgspec.field(default_factory=dict)


class _Hook(msgspec.Struct, frozen=True):
    event_type: str
    url: str = ""


_decode_page = msgspec.json.Decoder(_Page).decode
_decode_hooks = msgspec.json.Decoder(list[_Hook]).decode


class AccountApi:
    """The few account-level calls, with one key (the master's to list, an account's for its webhooks)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._secret = http.headers.get("Authorization", "").partition(" ")[2]

    @classmethod
    def open(cls, settings: Settings, api_key: str, api_url: str | None = None) -> AccountApi:
        return cls(create_http_client(settings, 2, api_key=api_key, api_url=api_url))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def sub_accounts(self, status: str | None = "enabled") -> list[SubAccount]:
        """Every page of the master account's sub-accounts (`status` None: enabled and disabled)."""
        found: list[SubAccount] = []
        page, pages = 1, 1
        while page <= min(pages, MAX_PAGES):
            params = {"page": str(page), "per_page": str(PER_PAGE), **({"status": status} if status else {})}
            response = await self._request("GET", "/v1/sub-organizations", params=params)
            try:
                listing = _decode_page(response.content)
            except msgspec.MsgspecError as e:
                raise ApiError("GET /v1/sub-organizations", 200, "undecodable body") from e
            found += [SubAccount(i.id, i.name, i.status, i.api_key) for i in listing.sub_organizations]
            total = listing.pagination.get("total_pages")
            pages = total if isinstance(total, int) else 1
            page += 1
        return found

    async def webhooks(self) -> dict[str, str]:
        """The account's call webhooks: event type -> URL."""
        response = await self._request("GET", "/v1/calls/webhooks")
        try:
            return {h.event_type: h.url for h in _decode_hooks(response.content)}
        except msgspec.MsgspecError as e:
            raise ApiError("GET /v1/calls/webhooks", 200, "undecodable body") from e

    async def set_webhook(self, event_type: str, url: str, *, replacing: bool) -> None:
        """Points `event_type` at `url`; when one is set already and Wavix refuses a second, it is removed first."""
        body = msgspec.json.encode({"event_type": event_type, "url": url})
        try:
            await self._request("POST", "/v1/calls/webhooks", content=body)
        except ApiError as e:
            if not replacing or e.status not in (400, 409, 422):
                raise
            await self._request("DELETE", "/v1/calls/webhooks", params={"event_type": event_type})
            await self._request("POST", "/v1/calls/webhooks", content=body)

    async def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                       content: bytes | None = None) -> httpx.Response:
        what = f"{method} {path}"
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await self._http.request(method, path, params=params, content=content, headers=headers)
        except httpx.HTTPError as e:
            raise ApiError(what, 0, type(e).__name__) from e
        if response.status_code not in (200, 201):
            try:
                message = decode_error(response.content).message or response.reason_phrase
            except msgspec.MsgspecError:
                message = response.reason_phrase
            text = (message or "no message")[:200]
            raise ApiError(what, response.status_code, text.replace(self._secret, "[redacted]") if self._secret
                           else text)
        return response


async def refresh_keys(api: AccountApi, clients: AccountClients) -> int:
    """One read of the listing (enabled and disabled sub-accounts) into `clients`; how many keys it gave."""
    listed = await api.sub_accounts(status=None)
    keys = {s.id: s.api_key for s in listed if s.api_key}
    clients.use_keys(keys)
    wanted = {a.sub_account for a in clients.configured.all if a.key_at_run_time}
    for missing in sorted(i for i in wanted if i is not None and i not in keys):
        log.warning("accounts.sub_account_not_listed", sub_account=missing, why="the master account does not list "
                    "it: its calls wait (and retry) until it is, or until the accounts file gives api_key_env")
    return len(keys)


async def run_key_refresh(clients: AccountClients, settings: Settings, *, stop: asyncio.Event,
                          min_gap_s: float = RETRY_S) -> None:
    """The worker's background task while some account takes its key from the listing: at start, then every
    ACCOUNT_KEYS_REFRESH seconds (RETRY_S after a failure), and RETRY_S after a reload that added an account
    whose key is still unknown (`AccountClients.keys_wanted`). Nothing to do without WAVIX_MASTER_API_KEY."""
    if not settings.wavix_master_api_key:
        return
    api = AccountApi.open(settings, settings.wavix_master_api_key)
    try:
        while not stop.is_set():
            clients.keys_wanted.clear()
            wait = float(settings.account_keys_refresh)
            if any(a.key_at_run_time for a in clients.configured.all):  # re-read on every turn: a reload adds some
                try:
                    count = await refresh_keys(api, clients)
                    log.info("accounts.keys_read", keys=count)
                except ApiError as e:
                    log.warning("accounts.keys_unread", reason=str(e))
                    wait = min_gap_s
            with contextlib.suppress(TimeoutError):  # at least `min_gap_s` between two reads, however soon asked
                await asyncio.wait_for(stop.wait(), timeout=min(wait, min_gap_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(stop, clients.keys_wanted), timeout=max(wait - min_gap_s, 0.0))
    finally:
        await api.aclose()


async def _either(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
