"""HTTP framing: a request whose ASGI scope carries both `Content-Length` and `Transfer-Encoding` is
refused with 400 (and the connection closed) before the app reads a byte of it.

RFC 9112 §6.1 and §11.2: a message with both headers is how requests are smuggled past a proxy that
frames by one header to a server that frames by the other; a server may reject it, or frame by
`Transfer-Encoding` alone, and must close the connection either way.

The served receiver runs on uvicorn with httptools (service/serve.py), whose parser (llhttp) refuses CL + TE
and broken chunked framing with its own 400 before the app is called, so there this guard never fires;
it serves a server that passes both headers on (uvicorn's h11 parser does, measured) and the in-process
tests. What Granian 2.8 (hyper), the other server `serve --server granian` runs, does by itself,
measured over a raw socket:
- CL + TE: frames by chunks alone, drops `Content-Length` from the scope, answers and closes the
  connection, so nothing hidden behind the chunked body is ever parsed as a request; the app cannot
  tell such a request from a chunked one, so this guard cannot fire there either;
- refuses with an empty 400 and closes: two different `Content-Length`s, a negative one, and a
  `Transfer-Encoding` whose last coding is not `chunked` (`identity`, `xchunked`);
- a broken chunk (size not hex, negative, overflowing, no CRLF after the data) ends the body with
  `http.disconnect`, which Litestar reports as a 500: the webhook handler answers 400 instead
  (service/webhooks.py);
- ignores chunk extensions whatever their bytes, and waits for the rest of a chunked body cut short.
The check scans the header names: 0.3 µs for six headers on this machine.
"""

from __future__ import annotations

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from contract import logs
from service.errors import error_body

log = logs.get("service.framing")

_REFUSAL = msgspec.json.encode(
    error_body("bad_request", "Content-Length and Transfer-Encoding together frame the body ambiguously")
)
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", b"%d" % len(_REFUSAL)),
    (b"connection", b"close"),
]


def _ambiguous(headers: list[tuple[bytes, bytes]]) -> bool:
    length = encoding = False
    for name, _ in headers:
        if len(name) == 14 and name.lower() == b"content-length":
            length = True
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            encoding = True
    return length and encoding


def refuse_ambiguous_framing(app: ASGIApp) -> ASGIApp:
    """Litestar middleware: a request framed by both headers gets 400 and the connection is closed."""

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and _ambiguous(scope["headers"]):  # type: ignore[arg-type]
            log.warning("request.rejected", reason="content_length_and_transfer_encoding")
            await send({"type": "http.response.start", "status": 400, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _REFUSAL, "more_body": False})
            return
        await app(scope, receive, send)

    return guard
