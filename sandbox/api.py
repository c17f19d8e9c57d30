"""The sandbox's HTTP face: Wavix's API for the calls placed so far, plus admin endpoints. A raw ASGI app.

Wavix's API (Bearer auth, or `?appid=<key>` as in Wavix's transcript URLs; base latency and faults apply):

    GET /v1/cdrs/{call_id}[?show_transcription=true]   and the older   GET /v1/cdr/{uuid}
    GET /v1/cdrs/{call_id}/transcription (also .../transcriptions)   GET /v1/cdr/{uuid}/transcription
    GET /v1/cdrs?from=YYYY-MM-DD&to=YYYY-MM-DD&type=placed|received[&page&per_page&disposition&uuid...]
                                                                      and the older   GET /v1/cdr?...
    GET /v1/recordings/{call_id}    302 to the recording file (`Location`)

Admin (no auth, no faults, no latency; for tests, benchmarks and demos, never part of Wavix):

    GET  /_sandbox/calls            every call placed, with its generated facts
    POST /_sandbox/calls?count=N    place N more calls (the caller sends their webhooks)
    GET  /_sandbox/stats            requests answered, by route and status, and faults injected
    GET|PUT /_sandbox/faults        read or replace the fault shares (a `Faults` JSON object)
    GET  /_sandbox/recordings/{call_id}.wav   the "recording" a Location points to

Why raw ASGI rather than Litestar: the benchmarks need thousands of answers per second from one core,
and dropping a connection needs a word with the server. The app asks for that with the ASGI extension
`sandbox.drop` (`sandbox.server` implements it); under another ASGI server it raises `DroppedByFault`,
which such a server turns into a broken response: still a failure the client must survive.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from sandbox import wire
from sandbox.faults import SERVER_ERRORS, Fault, Faults, forbids_transcript, pick
from sandbox.state import Sandbox

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DROP_EXTENSION = "sandbox.drop"
JSON = [(b"content-type", b"application/json")]
# 44-byte WAV header + 0.1 s of 8 kHz 8-bit silence: enough for a client to see a real audio file.
_WAV = (b"RIFF" + (36 + 800).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + b"\x01\x00\x01\x00" + (8000).to_bytes(4, "little") + (8000).to_bytes(4, "little")
        + b"\x01\x00\x08\x00data" + (800).to_bytes(4, "little") + b"\x80" * 800)


class DroppedByFault(Exception):
    """Raised to break the connection when the server does not offer the `sandbox.drop` extension."""


class Request(msgspec.Struct, frozen=True):
    method: str
    parts: list[str]  # path segments
    query: dict[str, str]
    headers: dict[bytes, bytes]
    base_url: str
    drop_supported: bool


def create_app(sandbox: Sandbox) -> ASGIApp:
    """The sandbox as an ASGI app; it shares `sandbox` (its state) with whoever else holds it."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = _request(scope)
        if request.parts[:1] == ["_sandbox"]:
            body = await read_body(receive)
            await _admin(sandbox, request, body, send)
        else:
            await _api(sandbox, request, send)

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _request(scope: Scope) -> Request:
    headers = dict(scope["headers"])
    host = headers.get(b"host", b"127.0.0.1").decode("latin-1")
    return Request(
        method=scope["method"],
        parts=[p for p in scope["path"].split("/") if p],
        query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
        headers=headers,
        base_url=f"{scope.get('scheme', 'http')}://{host}",
        drop_supported=DROP_EXTENSION in (scope.get("extensions") or {}),
    )


async def read_body(receive: Receive) -> bytes:
    """An ASGI request body, however many messages it came in."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON if headers is None else headers})
    await send({"type": "http.response.body", "body": body})


def _route(request: Request) -> tuple[str, str]:
    """`(route, call_id)` for a Wavix path, `("", "")` if it is not one the sandbox serves."""
    parts, method = request.parts, request.method
    if len(parts) < 2 or parts[0] != "v1" or method != "GET":
        return "", ""
    family = parts[1]
    if family in ("cdrs", "cdr"):
        if len(parts) == 2:
            return "list", ""
        if len(parts) == 3:
            return "cdr", parts[2]
        if len(parts) == 4 and parts[3] in ("transcription", "transcriptions"):
            return "transcript", parts[2]
    if family == "recordings" and len(parts) == 3:
        return "recording", parts[2]
    return "", ""


def _authorized(sandbox: Sandbox, request: Request) -> bool:
    key = sandbox.config.api_key.encode()
    given = request.headers.get(b"authorization", b"")
    if given[:7].lower() == b"bearer " and hmac.compare_digest(given[7:].strip(), key):
        return True
    appid = request.query.get("appid")
    return appid is not None and hmac.compare_digest(appid.encode(), key)


async def _api(sandbox: Sandbox, request: Request, send: Send) -> None:
    faults = sandbox.faults
    if faults.latency_s:
        await asyncio.sleep(faults.latency_s)
    route, call_id = _route(request)
    if not route:
        status = 404
        await respond(send, status, wire.encode(wire.error("Not found")))
    elif not _authorized(sandbox, request):
        status = 401
        await respond(send, status, wire.encode(wire.unauthorized()))
    else:
        spoiled = await _faulty(sandbox, faults, request, route, send)
        status = await _answer(sandbox, request, route, call_id, send) if spoiled is None else spoiled
    sandbox.requests[f"{request.method} {route or 'unknown'} {status}"] += 1


async def _faulty(sandbox: Sandbox, faults: Faults, request: Request, route: str, send: Send) -> int | None:
    """Injects at most one fault; returns the status it answered (0 for a drop), None to answer normally."""
    fault = pick(faults, sandbox.fault_rng)
    if fault is not None:
        sandbox.requests[f"fault {fault.value}"] += 1
    if fault is Fault.DROP:
        if not request.drop_supported:
            raise DroppedByFault("connection dropped by the sandbox's fault injection")
        await send({"type": DROP_EXTENSION})
        return 0
    if fault in (Fault.RATE_LIMIT, Fault.RATE_LIMIT_BARE):
        headers = list(JSON)
        if fault is Fault.RATE_LIMIT:
            headers.append((b"retry-after", str(faults.retry_after_s).encode()))
        await respond(send, 429, wire.encode(wire.error("Too many requests")), headers)
        return 429
    if fault is Fault.SERVER_ERROR:
        status = sandbox.fault_rng.choice(SERVER_ERRORS)
        await respond(send, status, wire.encode(wire.error("Internal server error")))
        return status
    if fault is Fault.SLOW:
        await asyncio.sleep(faults.slow_s)
    if route == "transcript" and forbids_transcript(faults, sandbox.fault_rng):
        sandbox.requests["fault 403"] += 1
        await respond(send, 403, wire.encode(wire.error("The service is not provisioned for your account.")))
        return 403
    return None


async def _answer(sandbox: Sandbox, request: Request, route: str, call_id: str, send: Send) -> int:
    """Wavix's answer to an authorized, unspoiled request; returns the status it sent."""
    if route == "list":
        try:
            body = wire.list_page(sandbox.listing, request.query)
        except wire.BadParameter as e:
            await respond(send, 400, wire.encode(wire.error(str(e))))
            return 400
        await respond(send, 200, wire.encode(body))
        return 200
    call = sandbox.get(call_id)
    ready = sandbox.transcript(call) if call is not None else None
    if call is None or (route == "transcript" and ready is None) or (route == "recording" and not call.answered):
        await respond(send, 404, wire.encode(wire.error("Record not found")))
        return 404
    if route == "cdr":
        wanted = request.query.get("show_transcription", "").lower() in ("true", "1")
        reference = f"{request.base_url}/v1/cdrs/{call_id}/transcription?appid={sandbox.config.api_key}"
        await respond(send, 200, wire.encode(wire.cdr(call, request.base_url, ready, reference if wanted else None)))
    elif route == "transcript":
        assert ready is not None
        await respond(send, 200, wire.encode(wire.transcript(call, ready, sandbox.transcription_date(call))))
    else:
        location = f"{request.base_url}/_sandbox/recordings/{call_id}.wav".encode()
        await respond(send, 302, b"", [(b"location", location), (b"content-type", b"text/plain")])
        return 302
    return 200


async def _admin(sandbox: Sandbox, request: Request, body: bytes, send: Send) -> None:
    what, method = request.parts[1:], request.method
    if what == ["calls"] and method == "GET":
        await respond(send, 200, wire.encode({"calls": sandbox.calls()}))
    elif what == ["calls"] and method == "POST":
        count = request.query.get("count", "1")
        if not count.isdigit() or not 1 <= int(count) <= 100_000:
            await respond(send, 400, wire.encode(wire.error("count must be a whole number in 1..100000")))
            return
        await respond(send, 201, wire.encode({"calls": sandbox.place(int(count))}))
    elif what == ["stats"] and method == "GET":
        await respond(send, 200, wire.encode({"requests": dict(sandbox.requests)}))
    elif what == ["faults"] and method in ("GET", "PUT"):
        await _admin_faults(sandbox, method, body, send)
    elif len(what) == 2 and what[0] == "recordings" and what[1].endswith(".wav") and method == "GET":
        call = sandbox.get(what[1].removesuffix(".wav"))
        if call is None or not call.answered:
            await respond(send, 404, wire.encode(wire.error("Record not found")))
        else:
            await respond(send, 200, _WAV, [(b"content-type", b"audio/wav")])
    else:
        await respond(send, 404, wire.encode(wire.error("Not found")))


async def _admin_faults(sandbox: Sandbox, method: str, body: bytes, send: Send) -> None:
    if method == "PUT":
        try:
            sandbox.set_faults(msgspec.json.decode(body, type=Faults))
        except (msgspec.ValidationError, ValueError) as e:
            await respond(send, 422, wire.encode(wire.error(str(e))))
            return
    await respond(send, 200, wire.encode(sandbox.faults))
