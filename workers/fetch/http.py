"""The worker's HTTP transport under `httpx.AsyncClient`: aiohttp's parser and pool, through `httpx-aiohttp`.

The design card keeps httpx's API (client, timeouts, exceptions, `MockTransport` in tests); what carries
the bytes is a library's choice, measured (bench/clients.py, GET of a 662-byte JSON body, 64 in flight,
client CPU per request, medians of alternating rounds in one run; `make bench` prints them, earlier runs are in git):

    httpx's default transport (httpcore)   3.9 ms,  91 req/s at 100 ms server latency (ceiling 640/s)
    httpx + httpx-aiohttp                  0.44 ms, 592 req/s at 100 ms
    httpx + our hand-written transport     0.28 ms, 608 req/s at 100 ms (removed: no target needed it)
    plain aiohttp                          0.12 ms

httpcore's pool does O(n) work under one lock per request (encode/httpx#3215); aiohttp's does not. The
hand-written HTTP/1.1 transport this replaces was 0.16 ms cheaper per request, ~4% of a worker's CPU at
400 calls/s, and missed the same targets. What stays ours is this thin layer: httpx-aiohttp maps most
aiohttp errors to httpx's, not always to the right one (a refused connection and a server that closes
without answering both become `httpx.ConnectTimeout`); `as_httpx` maps them again, most specific first,
so callers see the httpx exception that says what happened, `httpx.TransportError` when none fits.
aiohttp sends an idempotent request (GET) once more on a new connection when the server closed the
connection without answering, never a POST. Waiting for a free connection and connecting share aiohttp's
`connect` timeout (httpx's `pool`) and time out as `httpx.ConnectTimeout`. aiohttp has no write timeout:
a body the server never reads ends when the server closes (the worker sends GETs without a body).
Errors while the body streams in (`Response.aread`) are httpx-aiohttp's mapping: still httpx exceptions.
"""

from __future__ import annotations

import ssl

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# Most specific first: httpx-aiohttp's own table calls a refused connection and a server's early close
# "connect timeouts" (it prefers the `ClientConnectionError` row to the narrower ones).
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a response aiohttp's parser refused
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientOSError, httpx.ReadError),
)


def as_httpx(error: BaseException) -> httpx.TransportError:
    """The httpx exception for an aiohttp client error (`httpx.TransportError` when none fits better)."""
    for kind, mapped in _ERRORS:
        if isinstance(error, kind):
            return mapped(f"{type(error).__name__}: {error}")
    return httpx.TransportError(f"{type(error).__name__}: {error}")


class Transport(AiohttpTransport):
    """`httpx_aiohttp.AiohttpTransport` with every aiohttp error raised as the fitting httpx exception."""

    def __init__(self, *, limits: httpx.Limits | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=ssl_context or True, limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as e:
            if isinstance(e.__cause__, aiohttp.ClientError):
                raise as_httpx(e.__cause__) from e.__cause__
            raise
        except aiohttp.ClientError as e:
            raise as_httpx(e) from e
