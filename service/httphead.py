"""The receiver's HTTP/1.1 connections: uvicorn's httptools protocol with limits on the request head.

uvicorn with httptools (service/serve.py) limits neither the size of a request head nor the time it may
take. llhttp hands a header over only once it is complete, so httptools buffers one of any length (1 MB of
headers was accepted, where Granian answers 431), and a client that sends a head a byte at a time, or
nothing at all, keeps its connection and that buffer for as long as it likes (uvicorn's keep-alive timer
stops at a request's first byte). Neither library has a setting for either; uvicorn's h11 protocol has the
size limit but passes `Content-Length` + `Transfer-Encoding` on to the app (service/serve.py), so the two
limits are added here, and everything else is uvicorn's code unchanged:

- A head (request line and headers) over HEAD_LIMIT_BYTES is answered 431 and the connection closed. Bytes
  are counted as they arrive while a head is incomplete, so a connection can make the server hold at most
  the limit plus one read for a head; a head completed by the read that crossed the limit is caught by its
  exact size (its URL and header bytes) when it is complete.
- A head not complete HEAD_TIMEOUT_S after the connection opened, or after its first byte on a kept-alive
  connection, is answered 408 and the connection closed. One timer per connection looks every quarter of
  that (so the answer comes within 1.25 times it), rather than one timer set and cancelled per request.

16 KiB is uvicorn's own head limit for h11 and Node's default; a Wavix webhook's head is a few hundred bytes.
What the limits cost, `python -m bench.ingest --compare none` with this protocol and plain httptools
alternated three times (2026-12-02): decode-only route 11,076-12,048 req/s (median 11,284) against
11,186-11,619 (11,210); webhook route 6,319-7,631 webhooks/s (6,385) against 6,130-7,308 (6,961). The ranges
overlap on this shared machine; a first per-request version (a timer set and cancelled, a check in every
header callback) cost the decode-only route 4-14% and was replaced by this one.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HEAD_LIMIT_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
_TICK_S = HEAD_TIMEOUT_S / 4

_REASONS = {408: b"Request head not received in time.", 431: b"Request header fields too large."}


class _HeadTooLarge(Exception):
    """Raised from a parser callback: uvicorn answers the parser error through `send_400_response`."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose request heads are bounded in size and in time."""

    _in_head = True  # a request head is being read (from the connection's start, and after each request)
    _head_bytes = 0  # bytes received while in the head
    _head_since: float | None = None  # when the head being read began; None while none has begun
    _too_large = False
    _watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_since = self.loop.time()
        self._watch = self.loop.call_later(_TICK_S, self._check_time)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > HEAD_LIMIT_BYTES and not self.transport.is_closing():
            self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_since is None:
            self._head_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_since = False, None
        if len(self.url) + sum(len(name) + len(value) for name, value in self.headers) > HEAD_LIMIT_BYTES:
            self._too_large = True
            raise _HeadTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0  # the next request's head; its clock starts at its first byte

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._refuse(431)
        else:
            super().send_400_response(msg)

    def _check_time(self) -> None:
        self._watch = None
        if self.transport.is_closing():
            return
        since = self._head_since
        if since is not None and self.loop.time() - since >= HEAD_TIMEOUT_S:
            self._refuse(408)
            return
        self._watch = self.loop.call_later(_TICK_S, self._check_time)

    def _refuse(self, status: int) -> None:
        """Answers `status` the way uvicorn answers its own 400, and closes the connection."""
        reason = _REASONS[status]
        self.logger.warning("HTTP %d: %s", status, reason.decode())
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: text/plain; charset=utf-8\r\n", b"content-length: %d\r\n" % len(reason),
                 b"connection: close\r\n\r\n", reason]
        self.transport.write(b"".join(head))
        self.transport.close()
