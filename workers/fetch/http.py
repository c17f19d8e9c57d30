"""A fast HTTP/1.1 transport for `httpx.AsyncClient`: a keep-alive pool on `asyncio.Protocol`.

httpx's default transport (httpcore 1.0.9 over anyio) spends ~2 ms of CPU per request here and degrades
with concurrency: its pool does O(n) work under one lock per request (encode/httpx#3215). The design card
keeps httpx's API, so only the transport is ours: one `_Connection` protocol per socket, idle connections
in a deque per origin (O(1) checkout and return), waiters served first in, first out, requests written in
one `write`, responses parsed by hand (Content-Length, chunked, or read until close): 19 µs per CDR answer
against 129 µs for h11. Timeouts are httpx's (`request.extensions["timeout"]`), failures are httpx's
exceptions, and a connection that failed or timed out is closed, never reused. A GET on a reused connection
that the server closed before answering is retried once on a new connection. Messages name host:port only.

Measured: `httpx.AsyncClient` (limits 64/64, default asyncio loop) GETting `/v1/cdr/{id}?show_transcription=true`
from the sandbox (`spawn`, its own process), 3,000 requests after as many warm-up, two runs on a busy 2-core
machine (load ~4); requests/s, then client CPU per request:

    latency  in flight  httpcore                   FastTransport
    0 ms      1         370-600/s, 1.6-1.8 ms      960-1,560/s, 0.47-0.76 ms
    0 ms     64         210-350/s, 2.9-3.5 ms    1,040-1,360/s, 0.52-0.72 ms
    100 ms    1         ~10/s (latency-bound)      ~10/s
    100 ms   64          53-61/s, ~12 ms             460-575/s, 0.8-1.0 ms  (ceiling 64 / 0.1 s = 640/s)

Most of what remains per request is httpx itself (URL parsing three times, headers) and the loopback send.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from typing import Any

import httpx

Origin = tuple[bytes, bytes, int]  # scheme, host, port
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
MAX_HEAD = 64 * 1024
DEFAULT_PORTS = {b"http": 80, b"https": 443}
HEAD, BODY, TRAILERS, DONE = range(4)


class _Parser:
    """One HTTP/1.1 response, fed bytes as they come: 1xx skipped, body by Content-Length, chunks or close."""

    def __init__(self, head_only: bool) -> None:
        self.head_only = head_only
        self.buffer = bytearray()
        self.phase = HEAD
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.until_close = False
        self.body = bytearray()
        self._length = 0
        self._chunked = False
        self._chunk = -1  # bytes of the current chunk still to come; -1 while its size line is awaited

    def feed(self, data: bytes) -> bool:
        """Takes `data`; True once the response is complete. Raises `httpx.RemoteProtocolError`."""
        self.buffer += data
        if self.phase == HEAD and not self._head():
            return False
        if self.phase == BODY:
            self._chunks() if self._chunked else self._plain()
        if self.phase == TRAILERS:
            self._trailers()
        return self.phase == DONE

    def _head(self) -> bool:
        while True:  # bounded by the buffer: each pass consumes one head
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise httpx.RemoteProtocolError("response head too large")
                return False
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            del self.buffer[: end + 4]
            version, _, rest = lines[0].partition(b" ")
            code, _, self.reason = rest.partition(b" ")
            if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
                raise httpx.RemoteProtocolError("malformed status line")
            self.status = int(code)
            if self.status >= 200:
                self._framing(version, lines[1:])
                return True

    def _framing(self, version: bytes, lines: list[bytes]) -> None:
        length: int | None = None
        coded = False
        self.keep_alive = version == b"HTTP/1.1"
        for line in lines:
            name, sep, value = line.partition(b":")
            if not sep or not name or line[:1] in b" \t" or name[-1:] in b" \t":
                raise httpx.RemoteProtocolError("malformed header line")
            value = value.strip(b" \t")
            self.headers.append((name, value))
            key = name.lower()
            if key == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise httpx.RemoteProtocolError("bad Content-Length")
                length = int(value)
            elif key == b"transfer-encoding":
                coded, self._chunked = True, value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            elif key == b"connection":
                tokens = value.lower()
                self.keep_alive = b"close" not in tokens and (self.keep_alive or b"keep-alive" in tokens)
        if self.head_only or self.status in (204, 304) or (length == 0 and not coded):
            self.phase = DONE
            return
        self.phase = BODY
        self.until_close = (coded and not self._chunked) or (length is None and not self._chunked)
        self.keep_alive = self.keep_alive and not self.until_close
        self._length = length or 0

    def _plain(self) -> None:
        if self.until_close:
            self.body += self.buffer
            self.buffer.clear()
            return
        take = self._length - len(self.body)
        self.body += self.buffer[:take]
        del self.buffer[:take]
        if len(self.body) == self._length:
            self.phase = DONE

    def _chunks(self) -> None:
        buffer = self.buffer
        while self.phase == BODY:
            if self._chunk < 0:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise httpx.RemoteProtocolError("chunk size line too long")
                    return
                size = bytes(buffer[:end]).partition(b";")[0].strip()
                if not size or size.strip(b"0123456789abcdefABCDEF"):
                    raise httpx.RemoteProtocolError("bad chunk size")
                del buffer[: end + 2]
                self._chunk = int(size, 16)
                if self._chunk == 0:
                    self.phase = TRAILERS
                    return
            if len(buffer) < self._chunk + 2:
                return
            if buffer[self._chunk : self._chunk + 2] != b"\r\n":
                raise httpx.RemoteProtocolError("chunk not followed by CRLF")
            self.body += buffer[: self._chunk]
            del buffer[: self._chunk + 2]
            self._chunk = -1

    def _trailers(self) -> None:
        end = 0 if self.buffer[:2] == b"\r\n" else self.buffer.find(b"\r\n\r\n")
        if end >= 0:
            del self.buffer[: end + (2 if end == 0 else 4)]
            self.phase = DONE


class _Connection(asyncio.Protocol):
    """One socket: writes a request, parses its response, and remembers whether the server has closed."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin, self._loop = origin, loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = False  # any byte of the current response
        self.idle_since = 0.0
        self._parser: _Parser | None = None
        self._done: asyncio.Future[_Parser] | None = None
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._writable: asyncio.Future[None] | None = None  # set while the transport's buffer is full

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        parser, done = self._parser, self._done
        if parser is None or done is None or done.done():
            self.close()  # bytes nobody asked for: the stream's state is unknown
            return
        self.received = True
        self._last_read = self._loop.time()
        try:
            complete = parser.feed(data)
        except httpx.RemoteProtocolError as e:
            done.set_exception(e)
            self.close()
            return
        if complete:
            parser.keep_alive = parser.keep_alive and not parser.buffer
            done.set_result(parser)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()
        parser, done = self._parser, self._done
        if parser is None or done is None or done.done():
            return
        if parser.phase == BODY and parser.until_close:
            parser.phase, parser.keep_alive = DONE, False
            done.set_result(parser)
        elif exc is not None:
            done.set_exception(httpx.ReadError(f"connection lost ({type(exc).__name__})"))
        elif not self.received:
            done.set_exception(httpx.RemoteProtocolError("Server disconnected without sending a response."))
        else:
            done.set_exception(httpx.RemoteProtocolError("server closed the connection mid-response"))

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    async def exchange(self, data: bytes, head_only: bool, timeouts: dict[str, float | None]) -> _Parser:
        """Sends one request and returns its parsed response, within the write and read timeouts."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        self._parser, self.received = _Parser(head_only), False
        done: asyncio.Future[_Parser] = self._loop.create_future()
        self._done = done
        try:
            self.transport.write(data)
        except (OSError, RuntimeError) as e:
            raise httpx.WriteError(f"write failed ({type(e).__name__})") from e
        if self._writable is not None:
            try:
                await asyncio.wait_for(self._writable, timeouts.get("write"))
            except TimeoutError as e:
                raise httpx.WriteTimeout("timed out sending the request") from e
        read, self._timer = timeouts.get("read"), None
        self._last_read = self._loop.time()
        if read is not None:
            self._timer = self._loop.call_later(read, self._expire, read)
        try:
            return await done
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _expire(self, timeout: float) -> None:
        """The read timeout is per read, as httpx's: a lazy timer that moves on when bytes have arrived."""
        if self._done is None or self._done.done():
            return
        quiet = self._loop.time() - self._last_read
        if quiet < timeout:
            self._timer = self._loop.call_later(timeout - quiet, self._expire, timeout)
        else:
            self._done.set_exception(httpx.ReadTimeout("timed out waiting for the response"))

    def close(self) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._done.cancel()  # nobody will read its outcome
        if self.transport is not None:
            self.transport.close()


def _expire_wait(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.PoolTimeout("no connection became free within the pool timeout"))


class _Pool:
    """Connections per origin under one global limit: idle ones in a deque each, waiters first come, first served."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None) -> None:
        self._max_connections = limits.max_connections or 1 << 30
        keepalive = limits.max_keepalive_connections
        self._max_keepalive_connections = self._max_connections if keepalive is None else keepalive
        self._expiry = limits.keepalive_expiry
        self._ssl = ssl_context
        self._idle: dict[Origin, collections.deque[_Connection]] = {}
        self._idle_count = 0
        self._total = 0  # connections open or being opened
        self._waiters: collections.deque[tuple[Origin, asyncio.Future[_Connection | None]]] = collections.deque()
        self._all: set[_Connection] = set()
        self._closed = False

    async def acquire(self, origin: Origin, timeouts: dict[str, float | None]) -> tuple[_Connection, bool]:
        """An idle connection to `origin` (reused=True) or a new one, waiting for a free slot if need be."""
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        conn = self._pop_idle(origin)
        if conn is not None:
            return conn, True
        if self._total < self._max_connections:
            self._total += 1
        elif not self._evict_other(origin):
            handed = await self._wait(origin, timeouts.get("pool"))
            if handed is not None:
                return handed, True
        try:  # we hold a slot
            return await self._connect(origin, timeouts.get("connect")), False
        except BaseException:
            self._free_slot()
            raise

    def _pop_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()  # most recently used first, so surplus connections age out at the left
            self._idle_count -= 1
            if not conn.closed and (self._expiry is None or now - conn.idle_since < self._expiry):
                return conn
            self.discard(conn)
        return None

    def _evict_other(self, origin: Origin) -> bool:
        """Closes an idle connection to another origin so its slot serves `origin`: the limit is global."""
        for other, idle in self._idle.items():
            if other != origin and idle:
                self._idle_count -= 1
                conn = idle.popleft()
                conn.close()
                self._all.discard(conn)
                return True
        return False

    async def _wait(self, origin: Origin, timeout: float | None) -> _Connection | None:
        """Waits for a connection to `origin` or, as None, a free slot; first come, first served."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append((origin, waiter))
        timer = loop.call_later(timeout, _expire_wait, waiter) if timeout is not None else None
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()  # handed over just as we were cancelled: pass it on
                self.release(handed) if handed is not None else self._free_slot()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        name = host.decode("ascii")
        context = self._ssl_context() if scheme == b"https" else None
        opening = loop.create_connection(
            lambda: _Connection(origin, loop), name, port, ssl=context, server_hostname=name if context else None
        )
        try:
            _, conn = await asyncio.wait_for(opening, timeout)
        except TimeoutError as e:
            raise httpx.ConnectTimeout(f"connecting to {name}:{port} timed out") from e
        except OSError as e:  # refused, unreachable, DNS, TLS handshake (ssl.SSLError)
            raise httpx.ConnectError(f"cannot connect to {name}:{port} ({type(e).__name__}: {e})") from e
        self._all.add(conn)
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # made on first use: loading the CA bundle takes ~20 ms
            self._ssl = httpx.create_ssl_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    def release(self, conn: _Connection) -> None:
        """Hands `conn` to the first waiter, or keeps it idle within the keep-alive limits."""
        if conn.closed or self._closed:
            self.discard(conn)
            return
        while self._waiters:
            origin, waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if origin == conn.origin:
                waiter.set_result(conn)
            else:  # the waiter wants another origin: this connection's slot is theirs
                conn.close()
                self._all.discard(conn)
                waiter.set_result(None)
            return
        if self._idle_count >= self._max_keepalive_connections:
            self.discard(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle = self._idle.setdefault(conn.origin, collections.deque())
        idle.append(conn)
        self._idle_count += 1
        while self._expiry is not None and idle and conn.idle_since - idle[0].idle_since >= self._expiry:
            self._idle_count -= 1
            self.discard(idle.popleft())

    def discard(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)
        self._free_slot()

    def _free_slot(self) -> None:
        self._total -= 1
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                self._total += 1
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        self._idle_count = self._total = 0
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(httpx.ConnectError("the transport is closed"))
        self._waiters.clear()
        await asyncio.sleep(0)  # let the transports run connection_lost and close their sockets


class FastTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 (http and https) with a bounded keep-alive pool; `limits` as for `httpx.AsyncClient`."""

    def __init__(self, *, limits: httpx.Limits | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = _Pool(limits, ssl_context)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.raw_scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
        origin = (url.raw_scheme, url.raw_host, url.port or DEFAULT_PORTS[url.raw_scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        data = _serialise(request, await _body(request))
        retry = request.method in IDEMPOTENT
        while True:  # at most twice: `retry` is cleared after the first failure
            conn, reused = await self._pool.acquire(origin, timeouts)
            try:
                parser = await conn.exchange(data, request.method == "HEAD", timeouts)
            except httpx.TransportError as e:
                self._pool.discard(conn)
                if retry and reused and not conn.received and not isinstance(e, httpx.TimeoutException):
                    retry = False  # a stale keep-alive connection: the server never saw the request
                    continue
                raise
            except BaseException:  # cancelled mid-request: the stream's state is unknown
                self._pool.discard(conn)
                raise
            self._pool.release(conn) if parser.keep_alive else self._pool.discard(conn)
            return httpx.Response(
                parser.status, headers=parser.headers, stream=httpx.ByteStream(bytes(parser.body)),
                request=request, extensions={"http_version": b"HTTP/1.1", "reason_phrase": parser.reason},
            )

    async def aclose(self) -> None:
        await self._pool.aclose()


async def _body(request: httpx.Request) -> bytes:
    try:
        return request.content
    except httpx.RequestNotRead:
        return await request.aread()


def _serialise(request: httpx.Request, body: bytes) -> bytes:
    """Request line, headers as httpx prepared them (Host, Content-Length...), then the body."""
    lines = [request.method.encode("ascii") + b" " + request.url.raw_path + b" HTTP/1.1"]
    chunked = False
    for name, value in request.headers.raw:
        lines.append(name + b": " + value)
        chunked = chunked or (name.lower() == b"transfer-encoding" and b"chunked" in value.lower())
    head = b"\r\n".join(lines)
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        raise httpx.LocalProtocolError("a header or the request target holds a line break")
    if chunked:  # a streamed body of unknown length, read whole above: send it as one chunk
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    return head + b"\r\n\r\n" + body
