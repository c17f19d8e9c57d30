"""The receiver's Redis client (`contract.redisbatch.BatchedRedis`) against peers that misbehave the way
failovers and full servers do.

Tiny RESP servers on loopback stand in for Redis: one accepts and closes at once (maxclients, a proxy
during failover), one answers `-READONLY` or `-LOADING` on its first connection (a demoted master).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from litestar import Litestar
from litestar.datastructures import State
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, ConnectionError, ReadOnlyError, RedisError, ResponseError

from contract.redisbatch import REPLAY_PAUSES_S, BatchedRedis
from service.health import readyz

HANG_GUARD_S = 15.0  # only so that a regression fails instead of hanging the suite; never the assertion

# (connection number, command) -> the reply, b"" = close; asked with no command on accept: b"" closes at once
Answer = Callable[[int, list[bytes]], bytes]


def _commands(buffer: bytearray) -> list[list[bytes]]:
    """Complete RESP arrays of bulk strings, removed from `buffer`."""
    out: list[list[bytes]] = []
    while True:
        try:
            end = buffer.index(b"\r\n")
            count, pos, args = int(buffer[1:end]), end + 2, []
            for _ in range(count):
                end = buffer.index(b"\r\n", pos)
                size = int(buffer[pos + 1:end])
                if len(buffer) < end + 2 + size + 2:
                    return out
                args.append(bytes(buffer[end + 2:end + 2 + size]))
                pos = end + 2 + size + 2
        except ValueError:
            return out
        del buffer[:pos]
        out.append(args)


@asynccontextmanager
async def resp_server(answer: Answer) -> AsyncIterator[list[int]]:
    """Serves `answer` on a loopback port; yields [port, connections accepted so far]."""
    seen = [0, 0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen[1] += 1
        number, buffer = seen[1], bytearray()
        try:
            if answer(number, []) == b"":
                return
            while data := await reader.read(65536):
                buffer += data
                for command in _commands(buffer):
                    reply = answer(number, command)
                    if reply == b"":
                        return
                    writer.write(reply)
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    seen[0] = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()


@contextmanager
def closing_server(closing: int) -> Iterator[list[int]]:
    """A peer in its own thread (so that its close reaches the kernel before our loop runs again): closes
    the first `closing` connections right after accepting them, then answers +PONG to every command.
    Yields [port, connections accepted so far]."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen = [listener.getsockname()[1], 0]

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                seen[1] += 1
                if seen[1] > closing:
                    threading.Thread(target=answer_pong, args=(conn,), daemon=True).start()
                else:
                    conn.close()

    def answer_pong(conn: socket.socket) -> None:
        buffer = bytearray()
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                buffer += data
                conn.sendall(b"+PONG\r\n" * len(_commands(buffer)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        listener.close()


def refuses_first_with(error: str) -> Answer:
    """Answers `-{error}` to every command on the first connection, +PONG on later ones."""
    return lambda n, command: (f"-{error}\r\n".encode() if n == 1 else b"+PONG\r\n") if command else b"ok"


def client(port: int) -> BatchedRedis:
    pipe = BatchedRedis(f"redis://127.0.0.1:{port}/0", connect_timeout=1.0, timeout=1.0)
    pipe.on_connect.append(("SCRIPT", "LOAD", "return 1"))  # as the enqueuer registers its script
    return pipe


async def test_a_connection_closed_during_setup_fails_fast_and_later_calls_do_not_hang() -> None:
    """A peer that closes every new connection makes `call` raise ConnectionError, and the next call too:
    the setup command never waits on a closed connection and the connect lock is not held for good."""
    with closing_server(10**6) as (port, _):
        pipe = client(port)
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(pipe.call("PING"), HANG_GUARD_S)
        await pipe.aclose()


async def test_a_connection_closed_during_setup_is_retried() -> None:
    """One connection closed right after accept (maxclients for a moment) is retried within the same call."""
    with closing_server(1) as seen:
        pipe = client(seen[0])
        assert await asyncio.wait_for(pipe.call("PING"), HANG_GUARD_S) == b"PONG"
        assert seen[1] == 2
        await pipe.aclose()


DEMOTED = [("READONLY You can't write against a read only replica.", ReadOnlyError),
           ("LOADING Redis is loading the dataset in memory", BusyLoadingError),
           # redis-py's parser gives MASTERDOWN as a plain ResponseError
           ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", ResponseError)]


@pytest.mark.parametrize(("error", "raised"), DEMOTED)
async def test_a_command_a_demoted_primary_refused_is_sent_again_on_a_new_connection(
        error: str, raised: type[RedisError]) -> None:
    """After a failover the old connection says READONLY (or LOADING, MASTERDOWN): Redis did not run the
    command, so the connection is dropped and the same call sends it again on a new one, which answers:
    the caller sees the answer, not the failover (a webhook gets its 200, not a 503)."""
    async with resp_server(refuses_first_with(error)) as seen:
        pipe = BatchedRedis(f"redis://127.0.0.1:{seen[0]}/0", connect_timeout=1.0, timeout=1.0)
        assert await asyncio.wait_for(pipe.call("EVALSHA", "x", "0"), HANG_GUARD_S) == b"PONG"
        assert seen[1] == 2
        await pipe.aclose()


@pytest.mark.parametrize(("error", "raised"), DEMOTED)
async def test_a_redis_that_stays_demoted_fails_the_call_after_the_replays(
        error: str, raised: type[RedisError]) -> None:
    """A Redis that keeps answering READONLY (no failover is coming) fails the call with redis-py's error
    (READONLY is a ResponseError, LOADING a ConnectionError) after len(REPLAY_PAUSES_S) replays, each on a
    new connection: bounded, never a call held for good."""
    always = lambda n, command: f"-{error}\r\n".encode() if command else b"ok"  # noqa: E731
    async with resp_server(always) as seen:
        pipe = BatchedRedis(f"redis://127.0.0.1:{seen[0]}/0", connect_timeout=1.0, timeout=1.0)
        with pytest.raises(raised):
            await asyncio.wait_for(pipe.call("EVALSHA", "x", "0"), HANG_GUARD_S)
        assert seen[1] == len(REPLAY_PAUSES_S) + 1
        await pipe.aclose()


async def test_readyz_reports_the_client_the_webhooks_use() -> None:
    """/readyz pings the webhooks' pipelined client: when it cannot reach Redis the probe says 503, even
    though the other client (state.redis) answers."""
    with closing_server(10**6) as (port, _):
        pipe, healthy = client(port), Redis.from_url("redis://127.0.0.1:6379/0")
        app = Litestar(route_handlers=[readyz], state=State({"pipe": pipe, "redis": healthy}))
        try:
            async with AsyncTestClient(app=app) as http:
                assert (await http.get("/readyz")).status_code == 503
        finally:
            await pipe.aclose()
            await healthy.aclose()
