"""The Wavix API client: one CDR and one transcript per call, every failure mapped to `workers.retry`.

`WavixClient` wraps ONE shared `httpx.AsyncClient`, built at worker startup by `create_http_client` and
closed at shutdown; nothing is created at import. The path family is configurable (FACTS.md): the older
`/v1/cdr/{uuid}` or the current `/v1/cdrs/{call_id}`; the transcript lives under it at `/transcription`.

The CDR list (`list_cdrs`, one page) and the NDJSON export (`export_lines`, streamed line by line, never
whole in memory) serve reconciliation and backfill (workers/fetch/reconcile.py, backfill.py): the list's
path is the CDR path without its `/{call_id}`; the export is documented for the current family only
(`/v1/cdrs/all`). Each listed CDR is kept as the bytes Wavix sent (`msgspec.Raw`): it becomes the job's body.

Secrets: the API key travels only in the `Authorization` header. Errors and logs name the path family and
the status (`GET /v1/cdrs/{call_id} -> 503`), never a URL with its query. The transcript reference
(`show_transcription=true`) can carry the key as `?appid=`: `redact_url` strips it from everything returned.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from datetime import date
from typing import TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import msgspec

from contract import logs
from contract.errors import SettingsError
from contract.settings import Settings
from contract.wavix import Cdr, Transcript, decode_cdr, decode_error, decode_transcript
from workers.fetch.http import Transport
from workers.retry import (
    CallError,
    CdrMismatch,
    NotProvisioned,
    NotYet,
    Permanent,
    TooLarge,
    TranscriptNotReady,
    Transient,
    parse_retry_after,
)

log = logs.get("workers.fetch.wavix")

OnResponse = Callable[[str, int | str, float], None]
"""Metrics hook: (endpoint "cdr" | "transcript", HTTP status or "timeout" | "transport_error", seconds)."""

SECRET_PARAMS = frozenset({"appid", "api_key", "apikey", "key", "token", "access_token", "signature", "sig"})
_PLACEHOLDERS = ("{uuid}", "{call_id}")
_ONE_CALL = frozenset({"cdr", "transcript"})  # the endpoints whose path names a call
_MAX_MESSAGE = 200  # Wavix's `message` is short; a proxy's HTML error page is not
_MAX_NUMBER_PAGES = 100  # 10,000 numbers: more than any account we serve
_MAX_LIST_BODY = 64 << 20  # a page of 1,000 CDRs is about 0.5 MB; WAVIX_MAX_BODY is for one record


class _Number(msgspec.Struct, frozen=True):
    number: str | int | None = None


class _NumberPage(msgspec.Struct, frozen=True):
    items: list[_Number] = msgspec.field(default_factory=list)
    pagination: dict[str, object] = msgspec.field(default_factory=dict)

    @property
    def total_pages(self) -> int:
        pages = self.pagination.get("total_pages")
        return pages if isinstance(pages, int) else 1


decode_numbers = msgspec.json.Decoder(_NumberPage).decode


class CdrPage(msgspec.Struct, frozen=True):
    """One page of the CDR list: each item exactly as Wavix sent it, and how many pages there are."""

    items: list[msgspec.Raw] = msgspec.field(default_factory=list)
    pagination: dict[str, object] = msgspec.field(default_factory=dict)

    @property
    def total_pages(self) -> int:
        pages = self.pagination.get("total_pages")
        return pages if isinstance(pages, int) else 1


decode_cdr_page = msgspec.json.Decoder(CdrPage).decode

T = TypeVar("T")


def redact_url(url: str) -> str:
    """`url` without secret query parameters (appid, api_key, key, token, signature...) or user:password."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = [(k, v) for k, v in pairs if k.lower() not in SECRET_PARAMS]
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))
    except ValueError:
        return "[unparseable url]"


class _Cookieless(httpx.Cookies):
    """A cookie store that keeps nothing: the Wavix API authenticates by Bearer token and sets no cookie, and
    httpx would otherwise build a urllib request for every response to look for one (~14 µs of CPU each)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _ApiClient(httpx.AsyncClient):
    """`httpx.AsyncClient` that neither keeps nor sends cookies."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("the Wavix client keeps no cookies")


_NO_COOKIES = _Cookieless()


def create_http_client(
    settings: Settings, concurrency: int, *, transport: httpx.AsyncBaseTransport | None = None,
    api_key: str | None = None, api_url: str | None = None,
) -> httpx.AsyncClient:
    """The one shared HTTP client: explicit timeouts, a pool as large as the worker's concurrency, Bearer auth.

    `transport` is for tests (`httpx.MockTransport`), and for the accounts' clients, which share one
    (workers/fetch/accounts.py); the default is `workers.fetch.http.Transport` (aiohttp under httpx), which
    costs a ninth of httpcore's CPU per request. Redirects are not followed: the API answers JSON.
    `api_key`, `api_url`: an account's own, instead of WAVIX_API_KEY and WAVIX_API_URL.
    """
    key = settings.wavix_api_key if api_key is None else api_key
    if not key:
        raise SettingsError("WAVIX_API_KEY", "must be set for the workers to fetch CDRs")
    size = max(concurrency, 1)
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    return _ApiClient(
        base_url=api_url or settings.wavix_api_url,
        headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
        timeout=httpx.Timeout(connect=5.0, read=settings.wavix_timeout, write=10.0, pool=5.0),
        limits=limits,
        follow_redirects=False,
        transport=transport or Transport(limits=limits),
    )


class WavixClient:
    """Fetches CDRs and transcripts; raises only `workers.retry.CallError` subclasses."""

    def __init__(
        self, http: httpx.AsyncClient, *, cdr_path: str = "/v1/cdr/{uuid}", on_response: OnResponse | None = None,
        max_body: int = 1 << 20, account: str = "",
    ) -> None:
        found = [p for p in _PLACEHOLDERS if p in cdr_path]
        if len(found) != 1 or cdr_path.count(found[0]) != 1:
            raise SettingsError("WAVIX_CDR_PATH", "must hold exactly one {uuid} or {call_id} placeholder")
        self._http = http
        self._base = str(http.base_url).rstrip("/")  # see `_url`
        self._cdr_path = cdr_path.rstrip("/")
        self._placeholder = found[0]
        self._on_response = on_response
        self._max_body = max_body
        self._of_account = f" (account {account})" if account else ""  # in every error's reason, for its letter
        auth = http.headers.get("Authorization", "")
        self._secret = auth.partition(" ")[2] or None  # scrubbed from any text we pass on

    @classmethod
    def from_settings(
        cls, http: httpx.AsyncClient, settings: Settings, on_response: OnResponse | None = None, account: str = ""
    ) -> WavixClient:
        return cls(http, cdr_path=settings.wavix_cdr_path, on_response=on_response, max_body=settings.wavix_max_body,
                   account=account)

    @property
    def cdr_template(self) -> str:
        return self._cdr_path

    @property
    def transcript_template(self) -> str:
        return f"{self._cdr_path}/transcription"

    @property
    def list_template(self) -> str:
        """`/v1/cdrs` for `/v1/cdrs/{call_id}`, `/v1/cdr` for `/v1/cdr/{uuid}`."""
        return self._cdr_path.split("/" + self._placeholder)[0]

    @property
    def export_template(self) -> str:
        """The NDJSON export, `/v1/cdrs/all`: documented for the current family only, whatever the CDR path."""
        base = self.list_template
        return f"{base}/all" if base.endswith("/cdrs") else f"{base.removesuffix('/cdr')}/cdrs/all"

    async def list_cdrs(self, first: date, last: date, list_type: str, page: int, per_page: int) -> CdrPage:
        """One page of the CDRs of the whole UTC days `first`..`last` of one `type` (placed / received), every
        disposition: without `disposition=all` Wavix lists answered calls only."""
        params = {"from": first.isoformat(), "to": last.isoformat(), "type": list_type, "disposition": "all",
                  "page": str(page), "per_page": str(per_page)}
        response = await self._get("list", self.list_template, "-", None, params)
        return self._decode(decode_cdr_page, response, self.list_template)

    async def export_lines(self, first: date, last: date, list_type: str) -> AsyncGenerator[bytes, None]:
        """The export's non-empty lines (one CDR each) as they arrive; raises `CallError` like the other calls,
        also mid-stream. Close it (`contextlib.aclosing`) when stopping early."""
        label = f"GET {self.export_template}"
        params = {"from": first.isoformat(), "to": last.isoformat(), "type": list_type, "disposition": "all"}
        started = time.perf_counter()
        try:
            async with self._http.stream("GET", self._url(self.export_template, params)) as response:
                self._record("export", response.status_code, started, "-", None, label)
                if response.status_code != 200:
                    await response.aread()
                    raise self._error("export", label, response)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield line.encode()
        except httpx.TimeoutException as e:
            raise Transient(f"{label}: timeout ({type(e).__name__})") from e
        except httpx.RequestError as e:  # refused, or the stream broke off part-way
            raise Transient(f"{label}: connection failed ({type(e).__name__})") from e

    async def get_cdr(self, call_id: str, *, attempt: int | None = None) -> Cdr:
        """The call's CDR with its transcription reference (URLs redacted). A 404 is `NotYet`; a CDR that
        names another call is `CdrMismatch` (Wavix's error: never published as this call)."""
        response = await self._get("cdr", self.cdr_template, call_id, attempt, {"show_transcription": "true"})
        cdr = self._decode(decode_cdr, response, self.cdr_template)
        if cdr.id != call_id:
            named = "no call" if cdr.id is None else "another call"
            raise CdrMismatch(f"GET {self.cdr_template} -> 200: the CDR names {named}", status=200)
        return _redacted(cdr)

    async def own_numbers(self) -> list[str]:
        """The account's phone numbers as sent (`GET /v1/numbers`, every page): they tell a call's direction."""
        numbers: list[str] = []
        page, pages = 1, 1
        while page <= pages and page <= _MAX_NUMBER_PAGES:
            response = await self._get("numbers", "/v1/numbers", "-", None, {"page": str(page), "per_page": "100"})
            listing = self._decode(decode_numbers, response, "/v1/numbers")
            numbers += [str(item.number) for item in listing.items if item.number is not None]
            pages = listing.total_pages
            page += 1
        return numbers

    async def get_transcript(self, call_id: str, *, attempt: int | None = None) -> Transcript:
        """The call's transcript. 404 is `TranscriptNotReady`, 403 `NotProvisioned`."""
        response = await self._get("transcript", self.transcript_template, call_id, attempt, None)
        return self._decode(decode_transcript, response, self.transcript_template)

    async def _get(
        self, endpoint: str, template: str, call_id: str, attempt: int | None, params: dict[str, str] | None
    ) -> httpx.Response:
        label = f"GET {template}"
        if not call_id.strip():
            raise Permanent(f"{label}: empty call id")
        path = template.replace(self._placeholder, quote(call_id, safe="")) if endpoint in _ONE_CALL else template
        started = time.perf_counter()
        try:
            response = await self._http.get(self._url(path, params))
        except httpx.TimeoutException as e:
            self._record(endpoint, "timeout", started, call_id, attempt, label)
            raise Transient(f"{label}: timeout ({type(e).__name__})") from e
        except httpx.RequestError as e:  # dropped connection, refused, protocol error, bad encoding
            self._record(endpoint, "transport_error", started, call_id, attempt, label)
            raise Transient(f"{label}: connection failed ({type(e).__name__})") from e
        self._record(endpoint, response.status_code, started, call_id, attempt, label)
        if response.status_code != 200:
            raise self._error(endpoint, label, response)
        limit, name = (self._max_body, "WAVIX_MAX_BODY") if endpoint in _ONE_CALL else (_MAX_LIST_BODY, "a listing")
        if len(response.content) > limit:
            raise TooLarge(f"{label} -> 200: {len(response.content)} bytes, over {name} ({limit})", status=200)
        return response

    def _url(self, path: str, params: dict[str, str] | None) -> str:
        """The request's whole URL: httpx parses a full URL once, where joining a path and params to `base_url`
        parses it three times (~64 against ~23 µs of CPU a request, ~5% of a worker's CPU per call)."""
        return self._base + path + ("?" + urlencode(params) if params else "")

    def _error(self, endpoint: str, label: str, response: httpx.Response) -> CallError:
        """Maps a non-200 answer to the retry tree; the reason carries Wavix's `message`, scrubbed."""
        status = response.status_code
        reason = f"{label} -> {status}: {self._message(response)}{self._of_account}"
        if status == 429 or status == 408 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return Transient(reason, retry_after, status=status)
        if status == 404 and endpoint == "transcript":
            return TranscriptNotReady(reason, status=status)
        if status == 404:
            return NotYet(reason, status=status)
        if status == 403 and endpoint == "transcript":
            return NotProvisioned(reason, status=status)
        return Permanent(reason, status=status)

    def _message(self, response: httpx.Response) -> str:
        try:
            message = decode_error(response.content).message
        except msgspec.MsgspecError:
            message = None
        return self._scrub((message or response.reason_phrase or "no message")[:_MAX_MESSAGE])

    def _decode(self, decode: Callable[[bytes], T], response: httpx.Response, template: str) -> T:
        try:
            return decode(response.content)
        except msgspec.MsgspecError as e:
            raise Permanent(f"GET {template} -> 200: undecodable body ({self._scrub(str(e))})", status=200) from e

    def _record(
        self, endpoint: str, status: int | str, started: float, call_id: str, attempt: int | None, label: str
    ) -> None:
        seconds = time.perf_counter() - started
        expected = status in (200, 404)  # a 404 is the usual "not there yet", not a problem
        emit = log.info if expected else log.warning
        emit("wavix.response", request=label, call_id=call_id, status=status,
             latency_ms=round(seconds * 1000, 1), attempt=attempt)
        if self._on_response is not None:
            try:
                self._on_response(endpoint, status, seconds)
            except Exception:  # a metrics bug must not fail the fetch
                log.error("wavix.on_response_failed", endpoint=endpoint, exc_info=True)

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _redacted(cdr: Cdr) -> Cdr:
    """The CDR with secret query parameters removed from the URLs it carries."""
    changes: dict[str, object] = {}
    if isinstance(cdr.recording_url, str) and cdr.recording_url:
        changes["recording_url"] = redact_url(cdr.recording_url)
    reference = cdr.transcription
    if isinstance(reference, dict) and isinstance(reference.get("url"), str):
        changes["transcription"] = {**reference, "url": redact_url(reference["url"])}
    return msgspec.structs.replace(cdr, **changes) if changes else cdr
