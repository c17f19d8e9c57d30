"""The sandbox's ASGI plumbing, shared by its API, its admin endpoints, the Slack stand-in and test servers.

The types of an ASGI conversation, one parsed `Request` (path segments, query, headers, base URL), and
the two moves every handler makes: read the whole body, answer with one body. Nothing here knows Wavix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DROP_EXTENSION = "sandbox.drop"
JSON = [(b"content-type", b"application/json")]


class Request(msgspec.Struct, frozen=True):
    method: str
    parts: list[str]  # path segments
    query: dict[str, str]
    headers: dict[bytes, bytes]
    base_url: str
    drop_supported: bool


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def request_of(scope: Scope) -> Request:
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
