"""Running the sandbox: a small HTTP/1.1 server for its ASGI app, in this event loop or in a subprocess.

    async with serve(sandbox) as base_url:          # in the current loop, on a free loopback port
        ...
    async with spawn(config, calls=100) as base_url:    # `python -m sandbox` in another process
        ...

Why its own server rather than Granian or Uvicorn: the sandbox must close connections without an
answer (the `sandbox.drop` ASGI extension), must share one process and loop with the webhook sender and
with the tests that read its state, and must start in milliseconds on port 0. HTTP/1.1 with keep-alive
and `Content-Length` bodies is all Wavix's clients need; chunked request bodies are refused (501). A
response the app sends in several body messages (`more_body`, e.g. the NDJSON export) goes out as it
comes, with `transfer-encoding: chunked`; a one-message response gets a `content-length`.
Handlers never block: latency and slow answers are asyncio sleeps, so hundreds wait at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import msgspec

from sandbox.api import DROP_EXTENSION, ASGIApp, Message, create_app
from sandbox.config import SandboxConfig
from sandbox.state import Sandbox

log = logging.getLogger("sandbox.server")
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
BACKLOG = 2048  # asyncio's default (100) makes a burst of new connections wait a 1 s SYN retry
REASONS = {200: "OK", 201: "Created", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 422: "Unprocessable Entity", 429: "Too Many Requests",
           500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable"}


class _Exchange:
    """One request's ASGI conversation: the body in, the response (or a drop) out, buffered or streamed."""

    def __init__(self, body: bytes, writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        self.body: bytes | None = body
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.dropped = False
        self.streaming = False  # the head and some chunks are already written
        self.finished = False  # a streamed response has sent its last chunk
        self._writer, self._keep_alive = writer, keep_alive
        self._done = asyncio.Event()

    async def receive(self) -> Message:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status, self.headers = message["status"], list(message.get("headers", ()))
        elif kind == "http.response.body":
            chunk, more = message.get("body", b""), message.get("more_body", False)
            if self.streaming or more:
                await self._stream(chunk, more)
            else:
                self.chunks.append(chunk)
        elif kind == DROP_EXTENSION:
            self.dropped = True

    async def _stream(self, chunk: bytes, more: bool) -> None:
        if not self.streaming:
            self.streaming = True
            self._writer.write(response_head(self.status, self.headers, self._keep_alive, None))
        if chunk:
            self._writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        if not more:
            self._writer.write(b"0\r\n\r\n")
            self.finished = True
        await self._writer.drain()


def response_head(status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool, length: int | None) -> bytes:
    """A response's status line and headers: `content-length` when known, else chunked."""
    out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n".encode()]
    out += [name + b": " + value + b"\r\n" for name, value in headers
            if name not in (b"content-length", b"transfer-encoding")]
    out.append(b"content-length: %d\r\n" % length if length is not None else b"transfer-encoding: chunked\r\n")
    if not keep_alive:
        out.append(b"connection: close\r\n")
    return b"".join(out) + b"\r\n"


class Server:
    """An asyncio HTTP/1.1 server for one ASGI app; `start()` gives the base URL, `close()` ends it all."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=MAX_HEAD, backlog=BACKLOG
        )
        self.port = self._server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or sent what is not HTTP: end the connection
        except asyncio.CancelledError:
            # Only `close()` cancels a connection: ending quietly here keeps asyncio's stream callback,
            # which inspects this task's outcome, from reporting the shutdown as an error.
            return
        finally:
            self._connections.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serves one request; True to keep the connection for the next one."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        method, target, version = lines[0].split(b" ", 2)
        headers = [(name.strip().lower(), value.strip()) for name, _, value in (h.partition(b":") for h in lines[1:])]
        fields = dict(headers)
        length = int(fields.get(b"content-length", b"0") or 0)
        if fields.get(b"transfer-encoding") or length > MAX_BODY:
            writer.write(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            return False
        body = await reader.readexactly(length) if length else b""
        connection = fields.get(b"connection", b"").lower()
        keep_alive = connection != b"close" if version == b"HTTP/1.1" else connection == b"keep-alive"
        exchange = await self._run(self._scope(method, target, headers, writer), body, writer, keep_alive)
        if exchange.dropped or (exchange.streaming and not exchange.finished):
            writer.transport.abort()  # a drop, or a stream the app broke off: the client sees it cut
            return False
        if not exchange.streaming:
            payload = b"".join(exchange.chunks)
            writer.write(response_head(exchange.status or 500, exchange.headers, keep_alive, len(payload)) + payload)
            await writer.drain()
        return keep_alive

    def _scope(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
               writer: asyncio.StreamWriter) -> dict[str, Any]:
        path, _, query = target.partition(b"?")
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
            "method": method.decode("latin-1"), "path": unquote(path.decode("latin-1")), "raw_path": path,
            "query_string": query, "root_path": "", "headers": headers,
            "client": writer.get_extra_info("peername"), "server": (self.host, self.port),
            "extensions": {DROP_EXTENSION: {}},
        }

    async def _run(
        self, scope: dict[str, Any], body: bytes, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> _Exchange:
        exchange = _Exchange(body, writer, keep_alive)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            log.exception("sandbox app failed on %s %s", scope["method"], scope["path"])
            if not exchange.status:
                exchange.status, exchange.headers, exchange.chunks = 500, [], [b""]
        finally:
            exchange._done.set()
        return exchange


@contextlib.asynccontextmanager
async def serve(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serves `sandbox` in the current event loop; yields its base URL (`http://127.0.0.1:PORT`)."""
    server = Server(create_app(sandbox), host, port)
    url = await server.start()
    try:
        yield url
    finally:
        await server.close()


READY_PREFIX = "SANDBOX_URL="


@contextlib.asynccontextmanager
async def spawn(config: SandboxConfig, *, calls: int = 0, startup_timeout_s: float = 20.0) -> AsyncIterator[str]:
    """Runs `python -m sandbox` with `config` in a subprocess (its own core); yields its base URL.

    `calls` places that many calls at startup (list them with `GET /_sandbox/calls`). The process
    prints `SANDBOX_URL=...` once it listens; it is terminated (then killed) on exit.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "--port", "0", "--calls", str(calls),
        "--config-json", msgspec.json.encode(config).decode(),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield await asyncio.wait_for(_ready_url(process), startup_timeout_s)
    finally:
        await _stop(process)


async def _ready_url(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    while line := (await process.stdout.readline()).decode():
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX):].strip()
    raise RuntimeError(f"the sandbox exited (status {await process.wait()}) before it listened")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
