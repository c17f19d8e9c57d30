"""The sandbox's admin endpoints: what tests, benchmarks and demos ask of it, never part of Wavix.

No auth, no faults, no latency:

    GET  /_sandbox/calls            every call placed, with its facts (`SimCall`: direction, account_number,
                                    webhooks_dropped, transcript...), in the order placed
    POST /_sandbox/calls?count=N[&account=ID]   place N more calls (the caller sends their webhooks), of the
                                    master account or of the sub-account ID
    GET  /_sandbox/stats            `requests`: answers by route and status, faults injected;
                                    `webhooks`: calls placed and calls whose webhooks are dropped
    GET|PUT /_sandbox/faults[?account=ID]   read or replace the fault shares (a `Faults` JSON object), of every
                                    account or of one (0: the master)
    GET  /_sandbox/webhooks         each account's call webhooks as set through /v1/calls/webhooks
    GET  /_sandbox/recordings/{call_id}.wav   the "recording" a Location points to
"""

from __future__ import annotations

import msgspec

from sandbox import wire
from sandbox.asgi import Request, Send, respond
from sandbox.faults import Faults
from sandbox.state import Sandbox

# 44-byte WAV header + 0.1 s of 8 kHz 8-bit silence: enough for a client to see a real audio file.
_WAV = (b"RIFF" + (36 + 800).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + b"\x01\x00\x01\x00" + (8000).to_bytes(4, "little") + (8000).to_bytes(4, "little")
        + b"\x01\x00\x08\x00data" + (800).to_bytes(4, "little") + b"\x80" * 800)


async def admin(sandbox: Sandbox, request: Request, body: bytes, send: Send) -> None:
    """Answers one `/_sandbox/...` request."""
    what, method = request.parts[1:], request.method
    if what == ["calls"] and method == "GET":
        await respond(send, 200, wire.encode({"calls": sandbox.calls()}))
    elif what == ["calls"] and method == "POST":
        count = request.query.get("count", "1")
        if not count.isdigit() or not 1 <= int(count) <= 100_000:
            await respond(send, 400, wire.encode(wire.error("count must be a whole number in 1..100000")))
            return
        account = _account(sandbox, request)
        if account is None:
            await respond(send, 400, wire.encode(wire.error("account must be 0 or a sub-account's id")))
            return
        await respond(send, 201, wire.encode({"calls": sandbox.place(int(count), account=account or 0)}))
    elif what == ["webhooks"] and method == "GET":
        await respond(send, 200, wire.encode({str(a): hooks for a, hooks in sandbox.call_webhooks.items()}))
    elif what == ["stats"] and method == "GET":
        await respond(send, 200, wire.encode({"requests": dict(sandbox.requests), "webhooks": sandbox.webhook_stats()}))
    elif what == ["faults"] and method in ("GET", "PUT"):
        await _faults(sandbox, request, body, send)
    elif len(what) == 2 and what[0] == "recordings" and what[1].endswith(".wav") and method == "GET":
        call = sandbox.get(what[1].removesuffix(".wav"))
        if call is None or not call.answered:
            await respond(send, 404, wire.encode(wire.error("Record not found")))
        else:
            await respond(send, 200, _WAV, [(b"content-type", b"audio/wav")])
    else:
        await respond(send, 404, wire.encode(wire.error("Not found")))


def _account(sandbox: Sandbox, request: Request) -> int | None:
    """`?account=`: 0 when absent; None when it names no account."""
    given = request.query.get("account", "0")
    known = {0, *(s.id for s in sandbox.config.sub_accounts)}
    return int(given) if given.isdigit() and int(given) in known else None


async def _faults(sandbox: Sandbox, request: Request, body: bytes, send: Send) -> None:
    account = _account(sandbox, request) if "account" in request.query else -1
    if account is None:
        await respond(send, 400, wire.encode(wire.error("account must be 0 or a sub-account's id")))
        return
    if request.method == "PUT":
        try:
            sandbox.set_faults(msgspec.json.decode(body, type=Faults), None if account < 0 else account)
        except (msgspec.ValidationError, ValueError) as e:
            await respond(send, 422, wire.encode(wire.error(str(e))))
            return
    await respond(send, 200, wire.encode(sandbox.faults if account < 0 else sandbox.faults_for(account)))
