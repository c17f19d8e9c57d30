"""The receiver's Redis client batches the commands of one event-loop turn; each caller still gets its own
reply or its own error. Against the local Redis, and a peer that never answers."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from contract.redisbatch import BatchedRedis
from tests.test_resp_failover import HANG_GUARD_S, resp_server

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_concurrent_callers_each_get_their_own_reply_in_one_connection() -> None:
    """500 calls issued at once are answered each with its own value, over one connection (one client id)."""
    redis = BatchedRedis(REDIS_URL)
    try:
        before = await redis.call("CLIENT", "ID")
        replies = await asyncio.wait_for(
            asyncio.gather(*(redis.call("ECHO", f"v{i}") for i in range(500))), HANG_GUARD_S
        )
        assert replies == [f"v{i}".encode() for i in range(500)]
        assert await redis.call("CLIENT", "ID") == before
    finally:
        await redis.aclose()


async def test_an_error_reply_fails_only_its_own_call_and_keeps_the_connection() -> None:
    """An unknown command in the middle of a batch raises ResponseError for that caller alone; its
    neighbours get their replies and the connection stays (an error reply leaves the stream in step)."""
    redis = BatchedRedis(REDIS_URL)
    try:
        before = await redis.call("CLIENT", "ID")
        first, bad, last = await asyncio.gather(
            redis.call("ECHO", "a"), redis.call("NOSUCHCOMMAND"), redis.call("ECHO", "b"), return_exceptions=True
        )
        assert (first, last) == (b"a", b"b")
        assert isinstance(bad, ResponseError)
        assert await redis.call("CLIENT", "ID") == before
    finally:
        await redis.aclose()


async def test_a_peer_that_never_answers_times_out_and_the_next_call_dials_again() -> None:
    """No reply within `timeout`: every waiting call raises redis' TimeoutError, the connection is dropped,
    and the next call makes a new one (the second connection answers)."""
    def answer(connection: int, command: list[bytes]) -> bytes:
        if not command:
            return b"ok"
        return b"+PONG\r\n" if connection > 1 else b"+PON"  # first connection: never a whole reply

    async with resp_server(answer) as seen:
        redis = BatchedRedis(f"redis://127.0.0.1:{seen[0]}/0", connect_timeout=1.0, timeout=0.3)
        try:
            results = await asyncio.wait_for(
                asyncio.gather(redis.call("PING"), redis.call("PING"), return_exceptions=True), HANG_GUARD_S
            )
            assert [type(r) for r in results] == [RedisTimeout, RedisTimeout]
            assert await asyncio.wait_for(redis.call("PING"), HANG_GUARD_S) == b"PONG"
            assert seen[1] == 2
        finally:
            await redis.aclose()


async def test_garbage_fails_the_batch_as_a_connection_error_and_the_next_call_dials_again() -> None:
    """Bytes that are not RESP: the waiting calls raise redis' ConnectionError (a 503 for the app, never an
    unhandled error in the sender), and the next call makes a new connection."""
    async with resp_server(lambda n, command: (b"\x00\r\n" if n == 1 else b"+PONG\r\n") if command else b"ok") as seen:
        redis = BatchedRedis(f"redis://127.0.0.1:{seen[0]}/0", connect_timeout=1.0, timeout=1.0)
        try:
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(redis.call("PING"), HANG_GUARD_S)
            assert await asyncio.wait_for(redis.call("PING"), HANG_GUARD_S) == b"PONG"
            assert seen[1] == 2
        finally:
            await redis.aclose()


async def test_a_connection_closed_while_idle_is_replaced_before_the_next_batch() -> None:
    """Redis closing an idle connection (CLIENT KILL here) is noticed before the next command is written:
    the next call succeeds on a new connection instead of failing once."""
    redis, admin = BatchedRedis(REDIS_URL), BatchedRedis(REDIS_URL)
    try:
        victim = await redis.call("CLIENT", "ID")
        assert await admin.call("CLIENT", "KILL", "ID", victim) == 1
        await asyncio.sleep(0.05)
        assert await asyncio.wait_for(redis.call("ECHO", "x"), HANG_GUARD_S) == b"x"
        assert await redis.call("CLIENT", "ID") != victim
    finally:
        await redis.aclose()
        await admin.aclose()
