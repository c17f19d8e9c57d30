"""HTTP framing against the really served receiver (`wavix-events serve`, its default server), in raw bytes.

A request framed both by `Content-Length` and `Transfer-Encoding` is the request-smuggling shape of
RFC 9112 §6.1/§11.2. The served receiver (uvicorn with httptools, service/serve.py) refuses it with 400,
closes the connection and queues nothing of it, whichever header comes first and whatever hides behind
the chunked body. Broken chunked framing is the sender's fault: 400 and nothing queued, whether the bytes
come with the head or after it (the app has been called by then). No raw input gives a 5xx. A request
head is bounded (service/httphead.py): over 16 KiB it gets 431, not complete within 10 s 408, and the
connection is closed either way.
"""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from service.httphead import HEAD_LIMIT_BYTES, HEAD_TIMEOUT_S
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


def _answer_while_sending(served: Served, raw: bytes, piece: int = 4096) -> bytes:
    """Sends `raw` a piece at a time, stopping as soon as the server answers (so it never closes on bytes it
    has not read, which would reset the connection), then reads the answer to the end."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=5.0) as s:
        for start in range(0, len(raw), piece):
            s.sendall(raw[start:start + piece])
            if select.select([s], [], [], 0.05)[0]:
                break
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("lines", [
    pytest.param(["X-Big: " + "a" * 1_000_000], id="one-1MB-header"),
    pytest.param([f"X-Many-{n}: " + "b" * 1000 for n in range(20)], id="twenty-1KB-headers"),
    pytest.param([], id="a-17KB-path"),
])
def test_a_head_over_the_limit_gets_431_and_the_connection_closed(served, queue_of, lines):
    """Sent a piece at a time, so the server sees the head grow past 16 KiB: 431 once, closed, nothing queued."""
    cid = call_id()
    body = body_for(cid)
    raw = head(*lines, f"Content-Length: {len(body)}") + body
    if not lines:
        raw = raw.replace(PATH.encode(), PATH.encode() + b"?pad=" + b"p" * (HEAD_LIMIT_BYTES + 1024), 1)
    response = _answer_while_sending(served, raw)
    assert status_of(response) == 431, response[:200]
    assert response.count(b"HTTP/1.1 ") == 1 and b"connection: close" in response.lower()
    assert not any(cid.encode() in job for job in queued(queue_of, served))


def test_a_head_over_the_limit_that_arrives_whole_gets_431(served, queue_of):
    """The whole 20 KB head and its body in one write: the parser completes the head in one read, and its
    size is checked as the parser hands the headers over."""
    cid = call_id()
    body = body_for(cid)
    response = served.send(head(*[f"X-Many-{n}: " + "c" * 1000 for n in range(20)],
                                f"Content-Length: {len(body)}") + body)
    assert status_of(response) == 431, response[:200]
    assert not any(cid.encode() in job for job in queued(queue_of, served))


def test_a_head_just_under_the_limit_is_served(served, queue_of):
    """Headers of ~15 KiB in all are within the limit: the webhook is accepted and queued."""
    cid = call_id()
    body = body_for(cid)
    lines = [f"X-Trace-{n}: " + "d" * 1000 for n in range(HEAD_LIMIT_BYTES // 1024 - 2)]
    response = served.send(head(*lines, f"Content-Length: {len(body)}") + body)
    assert status_of(response) == 200, response[:200]
    assert any(cid.encode() in job for job in queued(queue_of, served))


def test_a_request_that_does_not_come_in_time_gets_408_and_the_connection_closed(served, queue_of):
    """A head cut off after its first line, a connection that sends nothing, and a webhook whose body stops
    halfway: each is answered 408 and closed once its 10 s have passed (the head's by the server, the body's
    by the app, as JSON), instead of being held open for as long as the client likes; nothing is queued."""
    cid = call_id()
    body = body_for(cid)
    started = time.monotonic()
    slow, silent, trickle = (socket.create_connection(("127.0.0.1", served.port), timeout=HEAD_TIMEOUT_S + 10)
                             for _ in range(3))
    with slow, silent, trickle:
        slow.sendall(f"POST {PATH} HTTP/1.1\r\nHost: receiver\r\n".encode())
        trickle.sendall(head(f"Content-Length: {len(body)}") + body[:10])
        answers = []
        for s in (slow, silent, trickle):
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            answers.append(out)
    assert [status_of(a) for a in answers] == [408, 408, 408], answers
    assert all(b"connection: close" in a.lower() for a in answers), answers
    assert b'"error":"request_timeout"' in answers[2], answers[2]
    assert HEAD_TIMEOUT_S - 1 <= time.monotonic() - started < HEAD_TIMEOUT_S * 1.25 + 5
    assert not any(cid.encode() in job for job in queued(queue_of, served))
