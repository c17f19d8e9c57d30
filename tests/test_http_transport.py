"""`workers.fetch.http.Transport` (httpx-aiohttp) against real HTTP/1.1 peers on loopback, through `httpx.AsyncClient`.

`Peer` is a tiny asyncio server whose path picks the answer (echo, chunked, close-delimited, slow, trickled,
dropped, garbage...) and which counts connections, so reuse and pool limits are observed from the server.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from contract.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import serve
from sandbox.state import Sandbox
from workers.fetch.http import Transport
from workers.fetch.wavix import WavixClient, create_http_client

CHUNKED = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
           b"lo\r\n6\r\n world\r", b"\n0\r\nX-Trailer: t\r\n", b"\r\n"]


class Peer:
    """An HTTP/1.1 server on a free loopback port; counts connections (total and at most open at once)."""

    def __init__(self) -> None:
        self.connections = self.open = self.max_open = 0
        self.requests: list[tuple[str, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            served = 0
            while await self._exchange(reader, writer, served):
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()
            self._tasks.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, served: int) -> bool:
        """Answers one request; False closes the connection."""
        lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        path, query = urlsplit(target).path, parse_qs(urlsplit(target).query)
        self.requests.append((method, path))
        if path == "/sink":  # never reads the body
            await asyncio.sleep(5)
            return False
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if path == "/drop" or (path == "/stale" and served > 0):
            return False
        if path == "/slow":
            await asyncio.sleep(float(query["s"][0]))
        if path in ("/chunked", "/close", "/trickle", "/garbage"):
            await self._special(path, writer)
            return path == "/chunked"
        echo = json.dumps({"method": method, "target": target, "headers": headers, "body": body.decode()}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nX-Reply: yes\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(echo), b"" if method == "HEAD" else echo))
        await writer.drain()
        return path != "/bye"  # /bye: answers as keep-alive, then closes the idle connection

    async def _special(self, path: str, writer: asyncio.StreamWriter) -> None:
        pieces = {"/chunked": CHUNKED, "/close": [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil ", b"close"],
                  "/trickle": [b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", *[b"x"] * 6],
                  "/garbage": [b"SPDY/9 what\r\n\r\n"]}[path]
        for piece in pieces:  # separate segments, to exercise the parser across reads
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.08 if path == "/trickle" else 0.005)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    server = Peer()
    await server.start()
    yield server
    await server.stop()


def client(peer: Peer, timeout: httpx.Timeout | float = 5.0, connections: int = 10) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=peer.url, timeout=timeout, transport=Transport(limits=limits))


async def test_get_post_and_head_round_trips(peer: Peer) -> None:
    """Method, target with query, Host, custom headers and a POST body arrive intact; status, headers and body
    come back; a HEAD answer's Content-Length does not make the client wait for a body."""
    async with client(peer) as http:
        got = await http.get("/echo", params={"q": "1"}, headers={"X-Test": "a b"})
        posted = await http.post("/echo", content=b"payload", headers={"Content-Type": "text/plain"})
        head = await http.head("/echo")
    seen = got.json()
    assert (got.status_code, got.headers["x-reply"], got.reason_phrase) == (200, "yes", "OK")
    assert (seen["method"], seen["target"], seen["headers"]["x-test"]) == ("GET", "/echo?q=1", "a b")
    assert seen["headers"]["host"] == peer.url.removeprefix("http://")
    assert posted.json()["method"] == "POST" and posted.json()["body"] == "payload"
    assert posted.json()["headers"]["content-length"] == "7"
    assert head.status_code == 200 and head.content == b""
    assert peer.connections == 1


async def test_keep_alive_reuses_one_connection(peer: Peer) -> None:
    """Sequential requests share one keep-alive connection instead of opening one each."""
    async with client(peer) as http:
        for i in range(20):
            assert (await http.get(f"/echo?i={i}")).json()["target"] == f"/echo?i={i}"
    assert peer.connections == 1


async def test_chunked_body_is_reassembled_and_the_connection_reused(peer: Peer) -> None:
    """Chunks split across reads (with an extension and a trailer, after a 100 Continue) make one body; the
    connection stays usable."""
    async with client(peer) as http:
        assert (await http.get("/chunked")).content == b"hello world"
        assert (await http.get("/echo")).status_code == 200
    assert peer.connections == 1


async def test_close_delimited_body_is_read_until_close(peer: Peer) -> None:
    """A body without length ends at EOF; that connection is not reused, the next request opens another."""
    async with client(peer) as http:
        assert (await http.get("/close")).content == b"until close"
        assert (await http.get("/echo")).status_code == 200
    assert peer.connections == 2


async def test_pool_limit_holds_under_100_concurrent_requests(peer: Peer) -> None:
    """100 requests at once over max_connections=5: all answered, never more than 5 connections in all."""
    async with client(peer, connections=5) as http:
        answers = await asyncio.gather(*(http.get("/slow?s=0.01") for _ in range(100)))
    assert [a.status_code for a in answers] == [200] * 100
    assert peer.max_open <= 5 and peer.connections <= 5 and len(peer.requests) == 100


async def test_connect_timeout() -> None:
    """A listener whose accept queue is full never completes the handshake: `httpx.ConnectTimeout`."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        transport = Transport()
        try:
            async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, connect=0.2)) as http:
                with pytest.raises(httpx.ConnectTimeout):
                    await http.get(f"http://127.0.0.1:{port}/")
        finally:
            for filler in fillers:
                filler.close()


async def test_connect_refused_is_a_connect_error() -> None:
    """A port nobody listens on: `httpx.ConnectError` (a TransportError, so the client maps it to Transient)."""
    with socket.socket() as bound:  # bound, not listening: the port stays ours and refuses
        bound.bind(("127.0.0.1", 0))
        async with httpx.AsyncClient(transport=Transport()) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{bound.getsockname()[1]}/")


async def test_read_timeout_discards_the_connection(peer: Peer) -> None:
    """An answer slower than the read timeout: `httpx.ReadTimeout`; that connection is never reused."""
    async with client(peer, timeout=httpx.Timeout(5, read=0.1)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/slow?s=1")
        assert (await http.get("/echo")).status_code == 200
    assert peer.connections == 2


async def test_read_timeout_is_per_read_not_per_response(peer: Peer) -> None:
    """As in httpx, the read timeout bounds the wait for each chunk: a body trickling in for ~0.5 s with
    0.08 s between bytes completes under a 0.3 s read timeout."""
    async with client(peer, timeout=httpx.Timeout(5, read=0.3)) as http:
        assert (await http.get("/trickle")).content == b"xxxxxx"


async def test_pool_timeout(peer: Peer) -> None:
    """With the only connection busy, a request that waits longer than the pool timeout fails as
    `httpx.ConnectTimeout` (aiohttp's `connect` timeout covers the wait for a connection and the connect);
    the busy request still completes."""
    async with client(peer, timeout=httpx.Timeout(5, pool=0.05), connections=1) as http:
        busy = asyncio.create_task(http.get("/slow?s=0.3"))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.ConnectTimeout):
            await http.get("/echo")
        assert (await busy).status_code == 200


async def test_a_body_the_server_never_reads_fails_when_the_server_gives_up(peer: Peer) -> None:
    """aiohttp has no write timeout: a large POST body the server never reads ends as `httpx.ReadError`
    when the server closes the connection (the worker only sends GETs without a body)."""
    async with client(peer, timeout=httpx.Timeout(10, write=0.2)) as http:
        with pytest.raises(httpx.ReadError):
            await http.post("/sink", content=b"x" * (32 * 1024 * 1024))


async def test_dropped_connection_is_a_transport_error_and_the_next_request_succeeds(peer: Peer) -> None:
    """A server that closes without answering: aiohttp sends the GET once more on a new connection (it is
    idempotent), then `httpx.RemoteProtocolError`; the next request gets a new connection."""
    async with client(peer) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/drop")
        assert (await http.get("/echo")).status_code == 200
    assert [p for _, p in peer.requests] == ["/drop", "/drop", "/echo"]
    assert peer.connections == 3


async def test_garbage_answer_is_a_protocol_error(peer: Peer) -> None:
    """Bytes that are not an HTTP/1.x response: `httpx.RemoteProtocolError`, not a hang or a crash."""
    async with client(peer) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/garbage")


async def test_stale_keep_alive_connection_is_replaced_for_get_only(peer: Peer) -> None:
    """A reused connection closed by the server on receipt of the next request: a GET is retried once on a
    new connection and succeeds; a POST (not idempotent) raises instead of being sent twice."""
    async with client(peer) as http:
        assert (await http.get("/stale")).status_code == 200
        assert (await http.get("/stale")).status_code == 200
        assert (peer.connections, len(peer.requests)) == (2, 3)
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/stale", content=b"once")
    assert [m for m, _ in peer.requests].count("POST") == 1


async def test_idle_connection_closed_by_server_is_not_reused(peer: Peer) -> None:
    """A keep-alive connection the server closed while idle is dropped at checkout: even a POST, which is
    never retried, succeeds on a new connection."""
    async with client(peer) as http:
        assert (await http.get("/bye")).status_code == 200
        await asyncio.sleep(0.05)
        assert (await http.post("/echo", content=b"x")).status_code == 200
    assert peer.connections == 2


async def test_cancelled_request_frees_its_slot(peer: Peer) -> None:
    """Cancelling a request mid-flight closes its connection and returns its slot: with max_connections=1 the
    next request is served instead of timing out on the pool."""
    async with client(peer, timeout=httpx.Timeout(5, pool=0.5), connections=1) as http:
        pending = asyncio.create_task(http.get("/slow?s=5"))
        await asyncio.sleep(0.05)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert (await http.get("/echo")).status_code == 200
    assert peer.connections == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make a certificate")
async def test_https_with_keep_alive(tmp_path: Path) -> None:
    """https:// goes through TLS with the given context (hostname checked against the certificate) and keeps
    the connection alive across requests."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    peer = Peer()
    await peer.start(server_tls)
    try:
        transport = Transport(ssl_context=ssl.create_default_context(cafile=str(cert)))
        async with httpx.AsyncClient(base_url=peer.url, transport=transport, timeout=5.0) as http:
            for _ in range(3):
                assert (await http.post("/echo", content=b"tls")).json()["body"] == "tls"
        async with httpx.AsyncClient(base_url=peer.url, transport=Transport(), timeout=5.0) as http:
            with pytest.raises(httpx.ConnectError):  # the default context does not trust a self-signed cert
                await http.get("/echo")
    finally:
        await peer.stop()
    assert peer.connections == 1  # three requests over one TLS connection; the refused handshake never counts


async def test_wavix_client_uses_the_aiohttp_transport_by_default() -> None:
    """`create_http_client` without a transport builds a `Transport` (aiohttp) with the worker's pool size, and the
    Wavix client fetches a CDR through it from the sandbox."""
    config = SandboxConfig(seed=1, api_key="k")
    sandbox = Sandbox(config)
    call = sandbox.place(1)[0]
    async with serve(sandbox) as url:
        http = create_http_client(Settings(wavix_api_key="k", wavix_api_url=url), concurrency=3)
        try:
            assert type(http._transport) is Transport
            assert http._transport.limits.max_connections == 3
            cdr = await WavixClient(http).get_cdr(call.call_id)
        finally:
            await http.aclose()
    assert call.call_id in (cdr.uuid, cdr.call_id)
