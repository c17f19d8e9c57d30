"""HTTP framing against the really served receiver (`wavix-events serve`, its default server), in raw bytes.

A request framed both by `Content-Length` and `Transfer-Encoding` is the request-smuggling shape of
RFC 9112 §6.1/§11.2. The served receiver (uvicorn with httptools, service/serve.py) refuses it with 400,
closes the connection and queues nothing of it, whichever header comes first and whatever hides behind
the chunked body. Broken chunked framing is the sender's fault: 400 and nothing queued, whether the bytes
come with the head or after it (the app has been called by then). No raw input gives a 5xx.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REDIS_URL, TOKEN, call_id, forget
from tests.helpers.servers import free_port, running

PATH = f"/webhooks/wavix/{TOKEN}"


class Served:
    def __init__(self, port: int, queue: str) -> None:
        self.port = port
        self.queue = queue

    def send(self, raw: bytes, timeout: float = 3.0, body_later: bool = False) -> bytes:
        """Writes raw bytes on a fresh connection and reads until the server closes it (or goes quiet).
        `body_later`: the head first, the rest once the server has had time to call the app."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            if body_later:
                end = raw.index(b"\r\n\r\n") + 4
                s.sendall(raw[:end])
                time.sleep(0.2)
                raw = raw[end:]
            s.sendall(raw)
            out = b""
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except TimeoutError:
                pass
            return out


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    port = free_port()
    queue, prefix = f"test:queue:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}:"
    env = {"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue, "KEY_PREFIX": prefix}
    try:
        with running(["serve", "--host", "127.0.0.1", "--port", str(port)], env, f"http://127.0.0.1:{port}/healthz"):
            yield Served(port, queue)
    finally:
        forget([prefix], [queue])


@pytest.fixture
def queue_of(served: Served) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def head(*lines: str) -> bytes:
    base = [f"POST {PATH} HTTP/1.1", "Host: receiver", "Content-Type: application/json", "Connection: close"]
    return ("\r\n".join([*base, *lines]) + "\r\n\r\n").encode()


def body_for(cid: str) -> bytes:
    return json.dumps({"uuid": cid, "disposition": "answered", "duration": 6}).encode()


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:80]
    return int(response[9:12])


def queued(client: redis.Redis, served: Served) -> list[bytes]:
    return list(client.zrange(served.queue, 0, -1))


def test_plain_and_chunked_webhooks_are_accepted(served, queue_of):
    """Both legitimate framings work on the served app: Content-Length alone, chunked alone."""
    for frame in ("length", "chunked"):
        cid = call_id()
        body = body_for(cid)
        raw = (head(f"Content-Length: {len(body)}") + body if frame == "length"
               else head("Transfer-Encoding: chunked") + chunked(body))
        response = served.send(raw)
        assert status_of(response) == 200, response
        assert b'"accepted"' in response


def smuggling(cid: str, hidden: str, encoding_first: bool) -> bytes:
    """A CL+TE request whose Content-Length also covers a second webhook hidden after the chunked body."""
    inner = body_for(hidden)
    tail = head(f"Content-Length: {len(inner)}").replace(b"Connection: close", b"X-Hidden: 1") + inner
    frame = chunked(body_for(cid)) + tail
    lines = [f"Content-Length: {len(frame)}", "Transfer-Encoding: chunked"]
    return head(*(lines[::-1] if encoding_first else lines)).replace(b"Connection: close\r\n", b"") + frame


@pytest.mark.parametrize("encoding_first", [False, True], ids=["length-first", "encoding-first"])
def test_content_length_with_transfer_encoding_never_lets_a_hidden_request_through(served, queue_of, encoding_first):
    """CL + TE: one answer, the connection closed; the request hidden in the CL tail never runs."""
    cid, hidden = call_id(), call_id()
    response = served.send(smuggling(cid, hidden, encoding_first))
    assert response.count(b"HTTP/1.1 ") == 1, response
    assert b"connection: close" in response.lower()
    assert not any(hidden.encode() in job for job in queued(queue_of, served))


def test_the_hidden_request_would_run_if_the_connection_stayed_open(served, queue_of):
    """Control for the test above: the same bytes framed by chunks alone on a kept-alive connection do
    carry a second webhook, which is processed; so its absence above is the server's doing."""
    cid, hidden = call_id(), call_id()
    raw = smuggling(cid, hidden, encoding_first=True)
    raw = raw.replace(b"Content-Length: %d\r\n" % (len(raw) - raw.index(b"\r\n\r\n") - 4), b"", 1)
    response = served.send(raw, timeout=1.0)
    assert response.count(b"HTTP/1.1 200") == 2, response
    assert any(hidden.encode() in job for job in queued(queue_of, served))


async def test_the_app_refuses_both_headers_when_a_server_passes_them_on(client, redis, settings):
    """In-process (the ASGI scope carries both headers): 400 `bad_request`, connection closed, nothing queued."""
    cid = call_id()
    frame = chunked(body_for(cid))
    response = await client.post(
        PATH, content=frame,
        headers={"content-type": "application/json", "transfer-encoding": "chunked", "content-length": str(len(frame))},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert response.headers["connection"] == "close"
    assert await redis.zrange(settings.queue_name, 0, -1) == []


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(lambda cid: smuggling(cid, call_id(), encoding_first=False), id="length-first-hiding-a-request"),
        pytest.param(lambda cid: smuggling(cid, call_id(), encoding_first=True), id="encoding-first-hiding-a-request"),
        pytest.param(lambda cid: head(f"Content-Length: {len(chunked(body_for(cid)))}", "Transfer-Encoding: chunked")
                     + chunked(body_for(cid)), id="both-agreeing"),
        pytest.param(lambda cid: head("Content-Length: 0", "Transfer-Encoding: chunked") + chunked(body_for(cid)),
                     id="length-zero"),
        pytest.param(lambda cid: head(f"Content-Length: {len(chunked(body_for(cid)))}", "Transfer-Encoding:  chunked ")
                     + chunked(body_for(cid)), id="encoding-padded"),
    ],
)
def test_content_length_with_transfer_encoding_gets_400_on_the_served_app(served, queue_of, raw):
    """RFC 9112 §6.1 lets a server reject CL + TE, and the served receiver does: 400, the connection
    closed, and no job for the webhook in the chunked body (nor for one hidden behind it)."""
    cid = call_id()
    response = served.send(raw(cid))
    assert status_of(response) == 400, response
    assert response.count(b"HTTP/1.1 ") == 1, response
    assert b"connection: close" in response.lower()
    assert not any(cid.encode() in job for job in queued(queue_of, served))


@pytest.mark.parametrize("body_later", [False, True], ids=["with-the-head", "after-the-head"])
@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(lambda b: b"zz\r\n" + b + b"\r\n0\r\n\r\n", id="size-not-hex"),
        pytest.param(lambda b: b"-5\r\n" + b + b"\r\n0\r\n\r\n", id="negative-size"),
        pytest.param(lambda b: b"ffffffffffffffffffff\r\n" + b + b"\r\n0\r\n\r\n", id="size-overflows"),
        pytest.param(lambda b: b"%x\r\n%bXX0\r\n\r\n" % (len(b), b), id="no-crlf-after-data"),
    ],
)
def test_broken_chunked_framing_gets_400_never_500(served, queue_of, frame, body_later):
    """A chunked body whose framing is broken answers 400, once, and closes; nothing is queued."""
    cid = call_id()
    response = served.send(head("Transfer-Encoding: chunked") + frame(body_for(cid)), body_later=body_later)
    assert status_of(response) == 400, response
    assert response.count(b"HTTP/1.1 ") == 1, response
    assert b"connection: close" in response.lower()
    assert not any(cid.encode() in job for job in queued(queue_of, served))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"POST " + PATH.encode() + b" HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
                     id="two-content-lengths"),
        pytest.param(head("Transfer-Encoding: identity", "Content-Length: 2") + b"{}", id="identity-coding"),
        pytest.param(head("Content-Length: -1") + b"{}", id="negative-length"),
        pytest.param(head("Content-Length: 2") + b"\xff\xfe", id="binary-body"),
        pytest.param(head("Content-Length: 7") + b"[[[[[[[", id="unclosed-nesting"),
        pytest.param(b"GARBAGE\r\n\r\n", id="not-http"),
        pytest.param(bytes(range(256)) + b"\r\n\r\n", id="every-byte"),
        pytest.param(head("X-Nul: a\x00b", "Content-Length: 2") + b"{}", id="nul-in-a-header"),
        pytest.param(b"POST /webhooks/wavix/%2e%2e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", id="dots"),
    ],
)
def test_malformed_requests_never_get_a_5xx(served, raw):
    """Whatever the framing or bytes, the served receiver answers 4xx, never 5xx."""
    response = served.send(raw)
    assert 400 <= status_of(response) < 500, response[:200]
