"""The Redis client of the hot paths: redis-py's connection and protocol code, with the commands issued in
one event-loop turn sent as one pipeline.

The receiver runs one command per webhook (EVALSHA of the enqueue script), from many concurrent requests;
a worker runs a few scripts per call (the ledger's claim and settle, the per-call record, a follow-up job)
from its concurrent jobs, through `register_script`, a drop-in for redis-py's (same `keys=`/`args=` call,
loaded on every new connection, its text sent once if Redis answers NOSCRIPT after all).
redis-py's `Redis.evalsha` costs ~53-64 µs of CPU per call here with 64 callers (pool checkout, a timer
per read, response callbacks); the same commands written together, one write per batch and their replies
read in order by hiredis, cost ~16 µs (bench/clients.py; `make bench` prints it). So the only
layer that is ours is the batching: `call()` queues a command and a future; one sender task takes every
command queued so far, writes them packed by redis-py's hiredis serializer (`HiredisRespSerializer`, the
one redis-py's own sync connection uses; 1.3 µs per webhook of an `ENQUEUE_MANY` batch against 8.1 µs for
the asyncio connection's pure-Python `pack_commands`, same bytes; the latter when hiredis is missing),
reads the replies with `read_response` and resolves the futures first in, first out. While a batch is on
the wire the next one gathers, so the batch grows with the load and nothing waits longer than one round
trip for its turn. The protocol (packing, parsing, AUTH/SELECT, TLS, unix sockets) is redis-py's.

Failures are redis-py's exceptions, so the app maps them to 503 in one place. A batch that fails or times
out (one deadline per batch, `timeout`) drops the connection: an unanswered command leaves the reply stream
unknowable, and the calls still waiting fail; the next call dials again. An error reply fails its own call
only, except READONLY, LOADING and MASTERDOWN, which also drop the connection (after a failover the old one
points at a replica: only a new one reaches the new master), and whose command, which Redis did not run,
is sent again on the new connection (REPLAY_PAUSES_S). A connection closed by Redis while idle is found
before a batch is written (redis-py's pool check), never after. A connection setup that fails (maxclients,
a proxy during failover, a Sentinel that still names the old primary) is tried SETUP_TRIES times before the
calls fail; a command that may have run is never sent twice. Where the connection goes (one Redis, or the
primary the Sentinels name) is contract/redisurl.py's `connector`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio.connection import AbstractConnection
from redis.connection import HiredisRespSerializer
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    MasterDownError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeout
from redis.utils import HIREDIS_AVAILABLE

from contract import redisurl

SETUP_TRIES = 3
REPLAY_PAUSES_S = (0.05, 0.2, 0.5)  # before each replay of a command a demoted or loading Redis did not run
SETUP_PAUSE_S = 0.05  # between two tries of a connection setup, doubled each time
_DROPPING = (ReadOnlyError, BusyLoadingError, MasterDownError)  # this connection will not serve writes again
_PINGS = (b"PING", "PING")  # commands that write nothing: a batch of them waits for no replica
_DROPPING_REPLIES = ("READONLY", "LOADING", "MASTERDOWN")  # redis-py's parser gives MASTERDOWN as a ResponseError

Command = tuple[Any, ...]
_SERIALIZER = HiredisRespSerializer() if HIREDIS_AVAILABLE else None
_Waiting = list[tuple[Command, "asyncio.Future[Any]"]]


class Scripting(Protocol):
    """What runs Lua scripts: this batching client or redis-py's `Redis` (the paths off the hot one)."""

    def register_script(self, script: Any) -> Any: ...


class BatchedRedis:
    """One lazily made connection; `call(*args)` queues a command, and returns its reply when it comes."""

    def __init__(self, url: str, *, connect_timeout: float = 1.0, timeout: float = 2.0, replicas: int = 0,
                 replica_timeout_ms: int = 100) -> None:
        """`replicas` > 0: every batch that carries more than PINGs ends with `WAIT replicas replica_timeout_ms`,
        and its calls fail with NotReplicated unless that many replicas have everything this connection wrote
        (one WAIT a batch, not a call: the receiver's ACK_REPLICAS, service/app.py)."""
        self._connect = redisurl.connector(url, connect_timeout=connect_timeout)  # the primary, via Sentinel too
        self._timeout = timeout
        self._wait: Command | None = (b"WAIT", replicas, replica_timeout_ms) if replicas > 0 else None
        self._conn: AbstractConnection | None = None
        self._queued: _Waiting = []
        self._sender: asyncio.Task[None] | None = None
        self.on_connect: list[Command] = []  # commands sent first on every new connection (SCRIPT LOAD)

    async def call(self, *args: Any) -> Any:
        """Sends one command with those sent in the same loop turn; raises redis-py's errors.

        A command answered READONLY, LOADING or MASTERDOWN was not run (a demoted primary, a Redis loading
        its data, a replica cut from its primary): its connection is dropped, and the command is sent again
        on a new one, which finds the current primary, after REPLAY_PAUSES_S; the error is raised only when
        every replay got one too."""
        for pause in REPLAY_PAUSES_S:
            try:
                return await self._call_once(args)
            except RedisError as e:
                if not _dropping(e):
                    raise
                await asyncio.sleep(pause)
        return await self._call_once(args)

    async def _call_once(self, args: Command) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((args, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all())
        return await future

    def register_script(self, text: str) -> Script:
        """A Lua script called like redis-py's `register_script(...)` result, through this batching client."""
        return Script(self, text)

    async def ping(self) -> None:
        """Raises unless Redis answers on the connection the calls use (the receiver's readiness)."""
        await self.call("PING")

    async def _send_all(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                await self._send(batch)
        finally:
            self._sender = None
            _fail(self._queued, ConnectionError("redis client stopped"))  # only when cancelled (aclose)

    async def _send(self, batch: _Waiting) -> None:
        try:
            conn = await self._connection()
        except RedisError as e:
            _fail(batch, e)
            return
        drop = False
        commands = [c for c, _ in batch]
        wait = self._wait if self._wait and any(c[0] not in _PINGS for c in commands) else None
        try:
            async with asyncio.timeout(self._timeout + (wait[2] / 1000 if wait else 0)):
                await conn.send_packed_command(_pack(conn, [*commands, wait] if wait else commands),
                                               check_health=False)
                replies: list[Any] = []
                for _ in range(len(commands) + (1 if wait else 0)):
                    try:
                        replies.append(await conn.read_response(disconnect_on_error=False))
                    except (ResponseError, BusyLoadingError) as e:  # an error reply: the stream is still in step
                        drop = drop or _dropping(e)
                        replies.append(e)
                if wait:
                    replies = _replicated(commands, replies[:-1], acked=replies[-1], wanted=wait[1])
                for (_, future), reply in zip(batch, replies, strict=True):
                    if not future.done():
                        future.set_exception(reply) if isinstance(reply, RedisError) else future.set_result(reply)
        except TimeoutError:
            drop = True
            _fail(batch, RedisTimeout("redis did not answer in time"))
        except (RedisError, OSError) as e:  # lost, or a reply redis-py cannot parse (InvalidResponse)
            drop = True
            _fail(batch, e if isinstance(e, ConnectionError) else ConnectionError(f"redis connection failed ({e})"))
        except BaseException:
            drop = True
            _fail(batch, ConnectionError("redis client stopped"))
            raise
        finally:
            if drop:
                await self._drop()

    async def _connection(self) -> AbstractConnection:
        conn = self._conn
        if conn is not None:
            try:
                if not await conn.can_read_destructive():  # type: ignore[no-untyped-call]  # closed by Redis while idle raises; data is a desync
                    return conn
            except (ConnectionError, OSError):
                pass
            await self._drop()
        pause = SETUP_PAUSE_S
        for attempt in range(1, SETUP_TRIES + 1):
            try:
                self._conn = await self._setup()
                return self._conn
            except ConnectionError:
                if attempt == SETUP_TRIES:
                    raise
                await asyncio.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    async def _setup(self) -> AbstractConnection:
        """A new connection, greeted by redis-py (AUTH, SELECT) and by `on_connect`; ConnectionError if not."""
        conn: AbstractConnection | None = None
        try:
            async with asyncio.timeout(self._timeout):
                conn = await self._connect()
                for command in self.on_connect:
                    await conn.send_command(*command)
                    await conn.read_response()
        except (RedisError, OSError, TimeoutError) as e:
            if conn is not None:
                await conn.disconnect(nowait=True)
            raise ConnectionError(f"redis connection setup failed ({type(e).__name__}: {e})") from e
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect(nowait=True)

    async def aclose(self) -> None:
        sender = self._sender
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        await self._drop()


class Script:
    """A Lua script called by its SHA (loaded on every new connection), by its text after a script flush
    under a live connection (NOSCRIPT): `await script(keys=[...], args=[...])`, as redis-py's."""

    def __init__(self, client: BatchedRedis, source: str | bytes) -> None:
        self._client = client
        self._source = source.encode() if isinstance(source, str) else source
        client.on_connect.append(("SCRIPT", "LOAD", self._source))
        self.sha = hashlib.sha1(self._source).hexdigest().encode()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        """Runs the script and returns its reply; Redis's errors propagate as redis-py's exceptions."""
        try:
            return await self._client.call(b"EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._client.call(b"EVAL", self._source, len(keys), *keys, *args)


def _pack(conn: AbstractConnection, commands: list[Command]) -> list[bytes]:
    if _SERIALIZER is None:
        return conn.pack_commands(commands)
    return [chunk for command in commands for chunk in _SERIALIZER.pack(*command)]


class NotReplicated(RedisError):
    """The primary ran the command, but fewer replicas than asked confirmed it in time (`replicas`)."""


def _replicated(commands: list[Command], replies: list[Any], *, acked: Any, wanted: int) -> list[Any]:
    """The batch's replies, each write's turned into NotReplicated when WAIT counted fewer than `wanted`."""
    if isinstance(acked, int) and acked >= wanted:
        return replies
    error = NotReplicated(f"{acked} of {wanted} replica(s) confirmed the write in time")
    return [error if c[0] not in _PINGS and not isinstance(r, RedisError) else r for c, r in zip(commands, replies,
                                                                                                 strict=True)]


def _dropping(error: RedisError) -> bool:
    """An answer that says this connection's Redis is not (or not yet) a primary: the command did not run."""
    return isinstance(error, _DROPPING) or str(error).startswith(_DROPPING_REPLIES)


def _fail(waiting: _Waiting, error: BaseException) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_exception(error)
    waiting.clear()
