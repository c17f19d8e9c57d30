"""The Wavix API client against a fake Wavix (`httpx.MockTransport`) that answers like the real one."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import pytest

from contract.errors import SettingsError
from contract.settings import Settings
from contract.values import plain_decimal
from workers.fetch.wavix import WavixClient, create_http_client, redact_url
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

KEY = "wx_live_9f8e7d6c5b4a3f2e1d0c"
CALL = "99df5ffd-962a-410f-bcce-d08f1f7f328c"
SPEC_CDR: dict[str, Any] = {  # the spec's example for GET /v1/cdrs/{call_id}, plus a transcription reference
    "date": "2023-08-21T06:43:36.000Z", "from": "14302287001", "to": "33170363950", "disposition": "answered",
    "duration": 6, "destination": "France", "per_minute": "0.027",
    "recording_url": "https://api.wavix.com/v1/recordings/recording_id", "charge": "0.162", "sip_trunk": "32882",
    "forward_fee": "0.0", "uuid": CALL, "call_id": CALL, "parent_uuid": CALL, "answered_by": "human",
    "transcription": {"uuid": "t-1", "url": f"https://api.wavix.com/v1/cdrs/{CALL}/transcription?appid={KEY}&x=1"},
}
OLD_CDR: dict[str, Any] = {  # older docs: numbers as JSON numbers, uppercase disposition, `uuid` only
    "date": "2021-03-01 10:00:00", "from": 12212123123, "to": 16465292513, "disposition": "ANSWERED",
    "duration": 12, "per_minute": 0.005, "charge": 0.01, "uuid": "old-uuid-1", "answered_by": None,
}
SPEC_TRANSCRIPT: dict[str, Any] = {
    "transcript": {"16572026750": "", "16465292513": ""},
    "turns": [{"type": "46844685344", "s": 160, "e": 7280, "text": "Hello, how can I help you?"}],
    "uuid": "e84f350f", "language": "en", "duration": 102, "charge": "0.01", "status": "completed",
    "transcription_date": "2023-01-09T10:04:39.734Z", "call_date": "2023-01-09T10:01:13.394Z",
    "call_uuid": CALL, "call_score": "3.8", "call_summary": "Billing.",
}
PATH = re.compile(r"^/v1/cdrs?/(?P<id>[^/]+)(?P<transcript>/transcription)?$")
Reply = httpx.Response | Exception


class FakeWavix:
    """Wavix as the client sees it: Bearer auth, both path families, its error bodies, scripted failures."""

    def __init__(self) -> None:
        self.cdrs: dict[str, dict[str, Any]] = {CALL: SPEC_CDR, "old-uuid-1": OLD_CDR}
        self.transcripts: dict[str, dict[str, Any]] = {CALL: SPEC_TRANSCRIPT}
        self.provisioned = True
        self.script: list[Reply] = []  # answered first, one per request
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            reply = self.script.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return error(401, "Unauthorized", unauthorized=True)
        match = PATH.match(request.url.path)
        if match is None:
            return error(404, "Record not found")
        if match["transcript"]:
            if not self.provisioned:
                return error(403, "The service is not provisioned for your account.")
            body = self.transcripts.get(match["id"])
        else:
            body = self.cdrs.get(match["id"])
        return httpx.Response(200, json=body) if body is not None else error(404, "Record not found")


def error(
    status: int, message: str, *, unauthorized: bool = False, headers: dict[str, str] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"success": False, "message": message}
    if unauthorized:
        body["error"] = True
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def wavix() -> FakeWavix:
    return FakeWavix()


def make_client(
    wavix: FakeWavix, cdr_path: str = "/v1/cdrs/{call_id}", key: str = KEY, **kwargs: Any
) -> WavixClient:
    settings = Settings(wavix_api_key=key, wavix_cdr_path=cdr_path)
    http = create_http_client(settings, concurrency=4, transport=httpx.MockTransport(wavix))
    return WavixClient.from_settings(http, settings, **kwargs)


@pytest.mark.parametrize(
    ("template", "prefix"),
    [("/v1/cdr/{uuid}", "/v1/cdr/"), ("/v1/cdrs/{call_id}", "/v1/cdrs/"),
     ("/v1/cdr/{call_id}", "/v1/cdr/"), ("/v1/cdrs/{uuid}/", "/v1/cdrs/")],
)
async def test_both_path_families_and_placeholders(wavix: FakeWavix, template: str, prefix: str) -> None:
    """Either family with either placeholder fetches `<family>/<id>` and `<family>/<id>/transcription`."""
    client = make_client(wavix, template)
    cdr = await client.get_cdr(CALL)
    transcript = await client.get_transcript(CALL)
    assert cdr.id == CALL and transcript.call_uuid == CALL
    assert [r.url.path for r in wavix.requests] == [prefix + CALL, prefix + CALL + "/transcription"]


@pytest.mark.parametrize("template", ["/v1/cdrs", "/v1/cdr/{id}", "/v1/cdr/{uuid}/{call_id}", "/{uuid}/{uuid}"])
def test_path_template_needs_exactly_one_known_placeholder(template: str) -> None:
    """A WAVIX_CDR_PATH without exactly one {uuid} or {call_id} fails at startup, naming the variable."""
    with pytest.raises(SettingsError, match="WAVIX_CDR_PATH"):
        WavixClient(httpx.AsyncClient(), cdr_path=template)


async def test_cdr_asks_for_the_transcription_reference(wavix: FakeWavix) -> None:
    """GET of a CDR sends show_transcription=true; the transcript GET sends no query."""
    client = make_client(wavix)
    await client.get_cdr(CALL)
    await client.get_transcript(CALL)
    assert wavix.requests[0].url.params["show_transcription"] == "true"
    assert wavix.requests[1].url.query == b""


async def test_a_base_url_with_a_path_keeps_it_and_no_cookie_is_kept_or_sent(wavix: FakeWavix) -> None:
    """Requests go out with their whole URL, the base URL's own path kept in front (as httpx joins them); a
    Set-Cookie from the API is neither kept nor sent back (the client authenticates by Bearer token only)."""
    settings = Settings(wavix_api_key=KEY, wavix_api_url="https://wavix.test/proxy/")
    sent: list[str] = []

    def behind_the_proxy(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return wavix(httpx.Request("GET", str(request.url).replace("/proxy", ""), headers=request.headers))

    http = create_http_client(settings, concurrency=4, transport=httpx.MockTransport(behind_the_proxy))
    wavix.script.append(httpx.Response(200, json=SPEC_CDR, headers={"set-cookie": "session=abc; Path=/"}))
    client = WavixClient(http)
    await client.get_cdr(CALL)
    await client.get_cdr(CALL)
    assert sent == [f"https://wavix.test/proxy/v1/cdr/{CALL}?show_transcription=true"] * 2
    assert "cookie" not in wavix.requests[1].headers and not http.cookies
    with pytest.raises(TypeError):
        http.cookies = {"session": "abc"}
    await http.aclose()


async def test_bearer_header_and_factory_limits(wavix: FakeWavix) -> None:
    """The factory sends `Authorization: Bearer <key>` to the configured base URL, with explicit timeouts/pool."""
    settings = Settings(wavix_api_key=KEY, wavix_api_url="https://wavix.test")
    http = create_http_client(settings, concurrency=16, transport=httpx.MockTransport(wavix))
    await WavixClient(http).get_cdr(CALL)
    request = wavix.requests[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.url.host == "wavix.test"
    assert (http.timeout.connect, http.timeout.read, http.timeout.pool) == (5.0, 10.0, 5.0)
    real = create_http_client(settings, concurrency=16)  # the mock has no pool: read the limits off a real one
    limits = real._transport.limits  # type: ignore[attr-defined]
    assert limits.max_connections >= 16 and limits.max_keepalive_connections >= 16
    await real.aclose()


def test_factory_refuses_an_empty_key() -> None:
    """Without WAVIX_API_KEY the workers fail at startup instead of sending `Bearer ` and dead-lettering all."""
    with pytest.raises(SettingsError, match="WAVIX_API_KEY"):
        create_http_client(Settings(), concurrency=1)


async def test_spec_shaped_cdr_decodes_and_loses_its_secret(wavix: FakeWavix) -> None:
    """The spec's CDR decodes field by field; its transcription URL comes back without `appid` (the key)."""
    cdr = await make_client(wavix).get_cdr(CALL)
    assert (cdr.call_id, cdr.from_, cdr.to, cdr.disposition, cdr.answered_by) == (
        CALL, "14302287001", "33170363950", "answered", "human")
    assert plain_decimal(cdr.charge) == ("0.162", None)
    assert cdr.reference is not None and isinstance(cdr.reference.url, str)
    assert KEY not in cdr.reference.url and "appid" not in cdr.reference.url
    assert cdr.reference.url.endswith(f"/v1/cdrs/{CALL}/transcription?x=1")


async def test_older_cdr_variant_decodes(wavix: FakeWavix) -> None:
    """Older CDRs (numbers as JSON numbers, uuid only, uppercase disposition) decode; money stays exact."""
    cdr = await make_client(wavix, "/v1/cdr/{uuid}").get_cdr("old-uuid-1")
    assert cdr.id == "old-uuid-1" and cdr.call_id is None
    assert cdr.from_ == 12212123123 and cdr.disposition == "ANSWERED"
    assert plain_decimal(cdr.charge) == ("0.01", None)


async def test_transcripts_decode_in_spec_and_older_shape(wavix: FakeWavix) -> None:
    """A spec transcript keeps its turns; an older one (speaker in `phone_number`, no summary) decodes too."""
    wavix.transcripts["old"] = {"transcript": {"1": "hi"}, "turns": [{"phone_number": 15551234567, "s": 0,
                                "e": 900, "text": "hi"}], "uuid": "t-2", "language": None, "status": "completed"}
    client = make_client(wavix)
    spec = await client.get_transcript(CALL)
    old = await client.get_transcript("old")
    assert spec.spoken()[0].speaker == "46844685344" and spec.call_score == "3.8"
    assert old.spoken()[0].speaker == "15551234567" and old.call_summary is None


@pytest.mark.parametrize(
    ("reply", "endpoint", "kind", "retry_after"),
    [
        (error(429, "Too many requests"), "cdr", Transient, None),
        (error(429, "Too many requests", headers={"Retry-After": "7"}), "cdr", Transient, 7.0),
        (error(500, "Internal error"), "cdr", Transient, None),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "cdr", Transient, None),
        (error(503, "Down", headers={"Retry-After": "120"}), "transcript", Transient, 120.0),
        (error(401, "Unauthorized", unauthorized=True), "cdr", Permanent, None),
        (error(403, "The service is not provisioned for your account."), "transcript", NotProvisioned, None),
        (error(403, "Forbidden"), "cdr", Permanent, None),
        (error(404, "Record not found"), "cdr", NotYet, None),
        (error(404, "Record not found"), "transcript", TranscriptNotReady, None),
        (error(422, "Missing or invalid parameter show_transcription"), "cdr", Permanent, None),
        (error(400, "Bad request"), "transcript", Permanent, None),
    ],
)
async def test_status_maps_to_the_retry_tree(
    wavix: FakeWavix, reply: httpx.Response, endpoint: str, kind: type[CallError], retry_after: float | None
) -> None:
    """Each status becomes its error class (exactly), with the status, Retry-After and Wavix's message."""
    wavix.script.append(reply)
    client = make_client(wavix)
    fetch = client.get_cdr if endpoint == "cdr" else client.get_transcript
    with pytest.raises(CallError) as caught:
        await fetch(CALL)
    assert type(caught.value) is kind
    assert caught.value.status == reply.status_code
    assert f"-> {reply.status_code}" in caught.value.reason
    if isinstance(caught.value, Transient):
        assert caught.value.retry_after == retry_after
    if reply.headers.get("content-type") == "application/json":
        assert json.loads(reply.content)["message"] in caught.value.reason


async def test_unauthorized_from_a_wrong_key_is_permanent(wavix: FakeWavix) -> None:
    """The fake checks the key like Wavix: a wrong key gets 401 `Unauthorized`, which never retries."""
    with pytest.raises(Permanent, match="401: Unauthorized"):
        await make_client(wavix, key="wrong-key-000000").get_cdr(CALL)


async def test_not_provisioned_account_gets_not_provisioned(wavix: FakeWavix) -> None:
    """Without the transcription feature the transcript endpoint's 403 is NotProvisioned, a Permanent."""
    wavix.provisioned = False
    with pytest.raises(NotProvisioned, match="not provisioned"):
        await make_client(wavix).get_transcript(CALL)


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), httpx.ConnectTimeout("timed out"), httpx.PoolTimeout("pool"),
     httpx.RemoteProtocolError("Server disconnected without sending a response."),
     httpx.ConnectError("[Errno 111] Connection refused"), httpx.ReadError("connection reset")],
)
async def test_timeouts_and_dropped_connections_are_transient(wavix: FakeWavix, failure: Exception) -> None:
    """Timeouts and transport errors become Transient (no Retry-After), chained to the httpx error."""
    wavix.script.append(failure)
    with pytest.raises(Transient) as caught:
        await make_client(wavix).get_cdr(CALL)
    assert caught.value.retry_after is None and caught.value.__cause__ is failure
    assert type(failure).__name__ in caught.value.reason


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'"a string"', b"[]"])
async def test_undecodable_200_is_permanent(wavix: FakeWavix, body: bytes) -> None:
    """A 200 whose body is not a JSON object is Permanent: retrying would read the same body."""
    wavix.script.append(httpx.Response(200, content=body))
    with pytest.raises(Permanent, match="200: undecodable"):
        await make_client(wavix).get_cdr(CALL)


async def test_call_id_cannot_escape_the_path(wavix: FakeWavix) -> None:
    """A call id with `/` or `?` is percent-encoded into one path segment; an empty id is Permanent."""
    client = make_client(wavix)
    with pytest.raises(NotYet):
        await client.get_cdr("../v1/numbers?x=1")
    assert wavix.requests[-1].url.raw_path.startswith(b"/v1/cdrs/..%2Fv1%2Fnumbers%3Fx%3D1?")
    with pytest.raises(Permanent, match="empty call id"):
        await client.get_cdr(" ")


def _scenarios(wavix: FakeWavix) -> list[Reply]:
    echo = error(422, f"Missing or invalid parameter appid={KEY}")  # a body that echoes the key
    return [echo, error(401, "Unauthorized", unauthorized=True), error(429, "slow", headers={"Retry-After": "3"}),
            httpx.ReadTimeout(f"timed out GET /v1/cdrs/x?appid={KEY}"), httpx.Response(200, content=b"{bad"),
            error(404, "Record not found"), error(503, "Down")]


async def test_key_never_appears_in_exceptions_logs_or_results(
    wavix: FakeWavix, caplog: pytest.LogCaptureFixture
) -> None:
    """No exception text, chained message, log record or returned value holds the API key, whatever Wavix says."""
    caplog.set_level(logging.DEBUG)
    client = make_client(wavix)
    texts: list[str] = [repr(await client.get_cdr(CALL, attempt=1)), repr(await client.get_transcript(CALL))]
    for reply in _scenarios(wavix):
        wavix.script.append(reply)
        with pytest.raises(CallError) as caught:
            await client.get_cdr(CALL, attempt=2)
        texts += [str(caught.value), repr(caught.value), caught.value.reason]
    texts += [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    assert len(caplog.records) >= 9
    leaks = [t for t in texts if KEY in t]
    assert leaks == []


async def test_each_call_is_logged_with_structured_fields(
    wavix: FakeWavix, caplog: pytest.LogCaptureFixture
) -> None:
    """One `wavix.response` record per call: path family (not URL), call_id, status, latency_ms, attempt."""
    caplog.set_level(logging.INFO, logger="workers.fetch.wavix")
    wavix.script.append(error(503, "Down"))
    client = make_client(wavix)
    with pytest.raises(Transient):
        await client.get_cdr(CALL, attempt=3)
    fields = [r.fields for r in caplog.records if r.getMessage() == "wavix.response"]  # type: ignore[attr-defined]
    assert len(fields) == 1 and caplog.records[0].levelno == logging.WARNING
    assert fields[0]["request"] == "GET /v1/cdrs/{call_id}" and fields[0]["call_id"] == CALL
    assert fields[0]["status"] == 503 and fields[0]["attempt"] == 3 and fields[0]["latency_ms"] >= 0


async def test_on_response_hook_sees_every_call_and_cannot_break_it(wavix: FakeWavix) -> None:
    """The metrics hook gets (endpoint, status or failure kind, seconds); a failing hook does not fail the fetch."""
    seen: list[tuple[str, int | str, float]] = []
    client = make_client(wavix, on_response=lambda e, s, t: seen.append((e, s, t)))
    wavix.script += [httpx.ConnectTimeout("t"), error(404, "Record not found"), error(404, "Record not found")]
    for fetch in (client.get_cdr, client.get_transcript, client.get_cdr):
        with pytest.raises(CallError):
            await fetch(CALL)
    await client.get_cdr(CALL)
    assert [(e, s) for e, s, _ in seen] == [("cdr", "timeout"), ("transcript", 404), ("cdr", 404), ("cdr", 200)]
    assert all(t >= 0 for _, _, t in seen)

    def broken(endpoint: str, status: int | str, seconds: float) -> None:
        raise RuntimeError("metrics bug")

    assert (await make_client(wavix, on_response=broken).get_cdr(CALL)).id == CALL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://api.wavix.com/v1/cdrs/1/transcription?appid={KEY}", "https://api.wavix.com/v1/cdrs/1/transcription"),
        (f"https://x.test/a?lang=en&APPID={KEY}&token=t&signature=s", "https://x.test/a?lang=en"),
        (f"https://u:{KEY}@x.test/r?api_key={KEY}&key=k#frag", "https://x.test/r"),
        ("https://x.test/plain", "https://x.test/plain"),
    ],
)
def test_redact_url_strips_secret_parameters(url: str, expected: str) -> None:
    """appid/api_key/key/token/signature (any case), user:password and fragments are removed; the rest kept."""
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), (" 1.5 ", 1.5), ("-3", 0.0), ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),
     ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After as seconds or an HTTP date (relative to now=40 s past the epoch); junk means no hint."""
    assert parse_retry_after(value, now=40.0) == expected



async def test_a_cdr_for_another_call_is_a_mismatch(wavix: FakeWavix) -> None:
    """Wavix answering call A's request with call B's record raises CdrMismatch (retried, never published)."""
    wavix.script.append(httpx.Response(200, json={**SPEC_CDR, "call_id": "someone-else", "uuid": "someone-else"}))
    with pytest.raises(CdrMismatch) as caught:
        await make_client(wavix).get_cdr(CALL)
    assert isinstance(caught.value, Transient) and caught.value.code == "cdr_mismatch"


async def test_a_cdr_over_the_size_limit_is_too_large(wavix: FakeWavix) -> None:
    """A CDR larger than WAVIX_MAX_BODY raises TooLarge, a Permanent error: it is never published."""
    wavix.script.append(httpx.Response(200, json={**SPEC_CDR, "padding": "x" * 2048}))
    settings = Settings(wavix_api_key=KEY, wavix_cdr_path="/v1/cdrs/{call_id}", wavix_max_body=1024)
    http = create_http_client(settings, concurrency=1, transport=httpx.MockTransport(wavix))
    with pytest.raises(TooLarge) as caught:
        await WavixClient.from_settings(http, settings).get_cdr(CALL)
    assert isinstance(caught.value, Permanent) and "WAVIX_MAX_BODY" in caught.value.reason


async def test_transcripts_with_the_specs_nulls_decode(wavix: FakeWavix) -> None:
    """Null `transcript`, null turn text and times decode; the turn is kept (text "", times 0)."""
    wavix.transcripts["nulls"] = {"transcript": None, "turns": [{"type": "1", "s": None, "e": None, "text": None}],
                                  "uuid": "t-3", "status": "completed"}
    wavix.transcripts["no-turns"] = {"transcript": None, "turns": None, "uuid": "t-4", "status": "completed"}
    client = make_client(wavix)
    nulls, empty = await client.get_transcript("nulls"), await client.get_transcript("no-turns")
    assert [t.text for t in nulls.spoken()] == [None] and empty.spoken() == []
