"""A signed-webhook destination stand-in: an HTTP/1.1 endpoint that verifies Standard Webhooks signatures.

Like the Slack stand-in (sandbox/slack.py), it stands for a peer we cannot run here: a consumer's webhook
endpoint. The verification is written from the Standard Webhooks spec, not from our sink's code, so the
two check each other. The sink tests (tests/helpers/sinks.py) script its answers; the chaos run
(chaos/sinks.py) counts what it received per event and per `webhook-id`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Self

TOLERANCE_S = 300  # the spec's suggested window for webhook-timestamp


def signature_ok(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """Standard Webhooks verification, written from the spec: any listed v1 signature may match."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs((now or time.time()) - int(stamp)) > TOLERANCE_S:
        return False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    for candidate in headers.get("webhook-signature", "").split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Records verified POSTs; answers `status` (with `retry_after` if set) or 401 to bad signatures."""

    secret: str = ""  # the destination's secret (`whsec_...` or plain); every caller names one
    status: int = 204
    verify: bool = True  # False: accept unsigned requests too (the benchmark's plain-POST baseline)
    retry_after: str | None = None
    answer_body: bytes = b""  # sent with every answer but a 204 (an endpoint that explains its refusal)
    delay_s: float = 0.0  # answer this long after the request arrived (it is recorded on arrival)
    script: list[int] = field(default_factory=list)  # statuses for the next requests, then `status`
    before_answer: Callable[[Request], Awaitable[None]] | None = None  # runs after recording, before the answer
    received: list[Request] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    rejected: int = 0
    count: int = 0
    port: int = 0
    host: str = "127.0.0.1"  # the address to listen on (the several-host chaos run: its bridge's)
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Stops listening, drops kept-alive connections, and waits for their handlers to end."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError,
                                 asyncio.CancelledError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(head[0].split(" ")[1], headers, body)
                status = self._answer(request)
                if self.before_answer is not None:
                    await self.before_answer(request)
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                extra = f"retry-after: {self.retry_after}\r\n" if self.retry_after and status != 204 else ""
                answer = self.answer_body if status != 204 else b""
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: {len(answer)}\r\n{extra}\r\n".encode() + answer)
                await writer.drain()
        writer.transport.abort()

    def _answer(self, request: Request) -> int:
        if self.verify and not signature_ok(self.secret, request.headers, request.body):
            self.rejected += 1
            return 401
        status = self.script.pop(0) if self.script else self.status
        if self.verify:
            self.requests.append(request)
        if 200 <= status < 300 and self.verify:
            self.received.append(request)
        elif 200 <= status < 300:
            self.count += 1  # the benchmark: count, keep nothing
        return status
