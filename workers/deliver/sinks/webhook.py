"""Webhook sink: the event POSTed to an HTTP endpoint, signed per the Standard Webhooks specification.

Request: `POST <url>`, body = the structured CloudEvent, `content-type: application/cloudevents+json`, and

    webhook-id          the idempotency key (`event.id:destination`): the same on every retry
    webhook-timestamp   unix seconds of this attempt
    webhook-signature   v1,<base64 HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}">

The key is the secret's bytes, or, for a `whsec_<base64>` secret (the spec's form), the decoded base64.
A receiver verifies the signature, rejects old timestamps, and drops repeated `webhook-id`s.

Answers: 2xx delivered. 408, 429, 5xx, timeouts and connection errors are Transient (`Retry-After`, in
seconds or as a date, travels as `retry_after`). Any other status (other 4xx; 3xx, since redirects are
not followed: a signed body is not re-sent elsewhere) is Permanent. Errors and logs name the sink and the
status, never the URL (it may carry a token) or the secret.
Each try tells workers/deliver/attempts.py what it heard (status, the body's first KiB, the header names it
sent, the signature masked) for the console's delivery attempts.

The sink uses `SinkOptions.http` when given (one client shared by every webhook sink of a worker, closed by
its owner), else builds its own client in `connect` and closes it in `close`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import httpx

from contract.events import CONTENT_TYPE, CloudEvent, encode_event
from workers.deliver import attempts
from workers.deliver.sinks.base import SinkError, SinkOptions, permanent, transient
from workers.retry import parse_retry_after

_PREFIX = "whsec_"
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


def signing_key(secret: str) -> bytes:
    """The HMAC key: base64-decoded after `whsec_`, else the secret's UTF-8 bytes."""
    if secret.startswith(_PREFIX):
        try:
            return base64.b64decode(secret[len(_PREFIX):], validate=True)
        except ValueError as e:
            raise SinkError("a whsec_ secret must be base64 after the prefix") from e
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class WebhookSink:
    """One endpoint, one secret; holds no connection of its own beyond the HTTP client's pool."""

    def __init__(self, url: str, *, name: str, secret: str, options: SinkOptions,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._url = url
        self._key = signing_key(secret)
        self._timeout = options.timeout_s
        self._client = options.http
        self._owns_client = False
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r})"  # never the URL or the key

    async def connect(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
            self._owns_client = True

    async def publish(self, event: CloudEvent, *, idempotency_key: str) -> None:
        await self.connect()
        assert self._client is not None
        body = encode_event(event)
        timestamp = int(self._clock())
        headers = {
            "content-type": CONTENT_TYPE,
            "webhook-id": idempotency_key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, idempotency_key, timestamp, body),
        }
        try:
            response = await self._client.post(
                self._url, content=body, headers=headers, timeout=self._timeout, follow_redirects=False
            )
        except httpx.TimeoutException as e:
            attempts.heard(sent=headers)
            raise transient(self.name, event, "endpoint timed out") from e
        except httpx.TransportError as e:
            attempts.heard(sent=headers)
            raise transient(self.name, event, f"endpoint unreachable ({type(e).__name__})") from e
        attempts.heard(status=response.status_code, body=response.content, sent=headers)  # for the console
        self._check(response, event)

    def _check(self, response: httpx.Response, event: CloudEvent) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in _TRANSIENT_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise transient(self.name, event, f"POST -> {status}", retry_after=retry_after, status=status)
        raise permanent(self.name, event, f"POST -> {status}", status=status)

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            client, self._client, self._owns_client = self._client, None, False
            await client.aclose()


def create(url: str, *, name: str, secret: str | None, options: SinkOptions) -> WebhookSink:
    """The factory `workers.deliver.sinks.base.build_sink` calls for http:// and https://; a secret is required."""
    if not secret:
        raise SinkError("a webhook destination needs a secret (Standard Webhooks signing)")
    return WebhookSink(url, name=name, secret=secret, options=options)
