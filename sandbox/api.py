"""The sandbox's HTTP face: Wavix's API for the calls placed so far, plus admin endpoints. A raw ASGI app.

Wavix's API (Bearer auth, or `?appid=<key>` as in Wavix's transcript URLs; base latency and faults apply):

    GET /v1/cdrs/{call_id}[?show_transcription=true]   and the older   GET /v1/cdr/{uuid}
    GET /v1/cdrs/{call_id}/transcription (also .../transcriptions)   GET /v1/cdr/{uuid}/transcription
    GET /v1/cdrs?from=YYYY-MM-DD&to=YYYY-MM-DD&type=placed|received[&page&per_page&disposition&uuid...]
                                                                      and the older   GET /v1/cdr?...
    GET /v1/cdrs/all?from=&to=&type=    the same selection streamed as NDJSON (`application/x-ndjson`)
    (both list answered calls only unless `disposition=all` or another disposition is asked for)
    GET /v1/numbers[?search&page&per_page]   the account's own numbers
    GET /v1/recordings/{call_id}    302 to the recording file (`Location`)
    GET /v1/sub-organizations[/{id}]   the master's sub-accounts, each with its key   (sandbox/accounts.py)
    GET|POST|DELETE /v1/calls/webhooks  the key's account's post-call and on-call webhook URLs

Each key is an account's (sandbox/accounts.py): it reads that account's calls only, and the faults set for that
account (else the shared ones) apply to its requests.

(`sandbox.listing` owns the parameters of the three listings.) Admin endpoints (`sandbox.admin`, no
auth, no faults, no latency; for tests, benchmarks and demos, never part of Wavix) live under `/_sandbox/`.

Why raw ASGI rather than Litestar: the benchmarks need thousands of answers per second from one core,
and dropping a connection needs a word with the server. The app asks for that with the ASGI extension
`sandbox.drop` (`sandbox.server` implements it); under another ASGI server it raises `DroppedByFault`,
which such a server turns into a broken response: still a failure the client must survive.
"""

from __future__ import annotations

import asyncio
from functools import partial

from sandbox import accounts, listing, wire
from sandbox.admin import admin
from sandbox.asgi import (
    DROP_EXTENSION,
    JSON,
    ASGIApp,
    Message,
    Receive,
    Request,
    Scope,
    Send,
    lifespan,
    read_body,
    request_of,
    respond,
)
from sandbox.faults import SERVER_ERRORS, Fault, Faults, forbids_transcript, pick, pick_cdr
from sandbox.state import Sandbox

__all__ = ["DROP_EXTENSION", "JSON", "ASGIApp", "DroppedByFault", "Message", "Receive", "Scope", "Send",
           "create_app", "read_body", "respond"]

NDJSON = [(b"content-type", b"application/x-ndjson")]


class DroppedByFault(Exception):
    """Raised to break the connection when the server does not offer the `sandbox.drop` extension."""


def create_app(sandbox: Sandbox) -> ASGIApp:
    """The sandbox as an ASGI app; it shares `sandbox` (its state) with whoever else holds it."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = request_of(scope)
        if request.parts[:1] == ["_sandbox"]:
            await admin(sandbox, request, await read_body(receive), send)
        else:
            await _api(sandbox, request, send, await read_body(receive) if request.method != "GET" else b"")

    return app


def _route(request: Request) -> tuple[str, str]:
    """`(route, call_id)` for a Wavix path, `("", "")` if it is not one the sandbox serves."""
    parts, method = request.parts, request.method
    if parts[:3] == ["v1", "calls", "webhooks"] and len(parts) == 3 and method in ("GET", "POST", "DELETE"):
        return "call_webhooks", ""
    if len(parts) < 2 or parts[0] != "v1" or method != "GET":
        return "", ""
    family = parts[1]
    if family == "sub-organizations" and len(parts) in (2, 3):
        return ("sub_orgs", "") if len(parts) == 2 else ("sub_org", parts[2])
    if family == "numbers" and len(parts) == 2:
        return "numbers", ""
    if family in ("cdrs", "cdr"):
        if len(parts) == 2:
            return "list", ""
        if len(parts) == 3 and parts[2] == "all" and family == "cdrs":
            return "export", ""
        if len(parts) == 3:
            return "cdr", parts[2]
        if len(parts) == 4 and parts[3] in ("transcription", "transcriptions"):
            return "transcript", parts[2]
    if family == "recordings" and len(parts) == 3:
        return "recording", parts[2]
    return "", ""


def _authorized(sandbox: Sandbox, request: Request) -> int | None:
    """The account whose key the request carries (Bearer, or `?appid=`); None for no account's."""
    given = request.headers.get(b"authorization", b"")
    if given[:7].lower() == b"bearer ":
        return accounts.account_of(sandbox, given[7:].strip())
    appid = request.query.get("appid")
    return None if appid is None else accounts.account_of(sandbox, appid.encode())


async def _api(sandbox: Sandbox, request: Request, send: Send, body: bytes = b"") -> None:
    account = _authorized(sandbox, request)
    faults = sandbox.faults_for(account or accounts.MASTER)
    if faults.latency_s:
        await asyncio.sleep(faults.latency_s)
    route, call_id = _route(request)
    if not route:
        status = 404
        await respond(send, status, wire.encode(wire.error("Not found")))
    elif account is None:
        status = 401
        await respond(send, status, wire.encode(wire.unauthorized()))
    else:
        spoiled = await _faulty(sandbox, faults, request, route, send)
        if spoiled is not None:
            status = spoiled
        elif route in ("sub_orgs", "sub_org", "call_webhooks"):
            status = await accounts.answer(sandbox, request, route, account, call_id, body, send)
        else:
            status = await _answer(sandbox, request, route, call_id, send, account)
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
        await respond(send, 403, wire.encode(wire.error(faults.forbidden_message)))
        return 403
    return None


async def _answer(sandbox: Sandbox, request: Request, route: str, call_id: str, send: Send, account: int = 0) -> int:
    """Wavix's answer to an authorized, unspoiled request of `account`; returns the status it sent."""
    if route in ("list", "export", "numbers"):
        return await _listing(sandbox, request, route, send, account)
    call = sandbox.get(call_id)
    if call is not None and call.account != account:
        call = None  # another account's call: as unknown to this key as a call that never was
    ready = sandbox.transcript(call) if call is not None else None
    if call is None or (route == "transcript" and ready is None) or (route == "recording" and not call.answered):
        await respond(send, 404, wire.encode(wire.error("Record not found")))
        return 404
    if route == "cdr":
        wanted = request.query.get("show_transcription", "").lower() in ("true", "1")
        reference = f"{request.base_url}/v1/cdrs/{call_id}/transcription?appid={accounts.key_of(sandbox, account)}"
        body = wire.cdr(call, request.base_url, ready, reference if wanted else None)
        fault = pick_cdr(sandbox.faults, sandbox.fault_rng)
        if fault is not None:
            sandbox.requests[f"fault {fault.value}"] += 1
        if fault is Fault.WRONG_CDR:
            body = wire.wrong_cdr(call, sandbox.neighbours(call), request.base_url)
        elif fault is Fault.OVERSIZED_CDR:
            body = wire.oversized(body)
        await respond(send, 200, wire.encode(body))
    elif route == "transcript":
        assert ready is not None
        await respond(send, 200, wire.encode(wire.transcript(call, ready, sandbox.transcription_date(call))))
    else:
        location = f"{request.base_url}/_sandbox/recordings/{call_id}.wav".encode()
        await respond(send, 302, b"", [(b"location", location), (b"content-type", b"text/plain")])
        return 302
    return 200


async def _listing(sandbox: Sandbox, request: Request, route: str, send: Send, account: int = 0) -> int:
    """The CDR list, the NDJSON export (streamed in chunks) or the account's numbers."""
    calls = partial(sandbox.listing, account=account)  # the key's account's calls only
    try:
        if route == "export":
            lines = listing.export_lines(calls, request.query)
        else:
            body = (listing.list_page(calls, request.query) if route == "list"
                    else listing.numbers_page(sandbox.config.seed, request.query))
    except listing.BadParameter as e:
        await respond(send, 400, wire.encode(wire.error(str(e))))
        return 400
    if route != "export":
        await respond(send, 200, wire.encode(body))
        return 200
    version = f'"{sandbox.version}"'.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [*NDJSON, (b"etag", version), (b"last-modified", sandbox.last_modified().encode())]})
    for chunk in lines:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return 200
