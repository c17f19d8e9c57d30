"""PostgreSQL sink: every event into tables made for querying (`calls`, `call_transcripts`, `events`), the
publishes of concurrent deliveries written together, one transaction per batch.

    postgresql://user@host:5432/db?schema=wavix   (URL, schema and migrations: postgres_schema.py;
                                                   rows and statements: postgres_rows.py)

`publish` queues its event and a future; one writer task takes every event queued so far (at most `batch`) and
writes them in one transaction, three statements of `unnest`ed arrays, then answers each future. While one batch
is in PostgreSQL the next gathers, so the batch grows with the load and a burst does not cost a round trip and a
commit per call (`make bench`: ours / asyncpg in a plain loop of one transaction per event, bench/sinks.py).

The driver is asyncpg, not psycopg 3: the same upsert of 200-row batches cost 8.5-8.9 µs of client CPU per row
with asyncpg's binary `unnest` arrays against 27 µs with psycopg 3.3 (binary wheel, same SQL), and a statement
per row in a loop 152-242 µs against 325-411 µs (two rounds each, loopback PostgreSQL 15, this 2-CPU machine);
batches went 14,000-18,400 rows/s against 7,500-10,000. It also needs no libpq, and asyncpg-stubs types it.

The writes are idempotent (postgres_rows.py: events kept first-come, calls and transcripts replaced only by a
newer event), so a batch whose outcome is unknown (a connection lost around COMMIT, a timeout) may simply be
written again: the sink does so once at once on a fresh connection, then leaves it to the retry schedule. That
is what makes a redelivery, a replay, two workers racing, or a worker killed between COMMIT and the ledger's
mark leave the tables as if each event had been applied once.

Errors, by SQLSTATE class: connection (08), transaction rollback (40: serialization, deadlock), insufficient
resources (53), object state (55: lock not available), operator intervention (57: shutdown, cancel), system
(58), unreachable, timeouts: Transient. Anything else is Permanent: permission denied (42501), a table or column
that is not as migrated (42P01, 42703), a schema newer than this worker (postgres_schema.SchemaTooNew), bad
credentials (28), no such database (3D). A data error in a batch (22, 23) is found by writing its events one by
one, so only the event that cannot be written is refused. Reasons name the destination, never the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncpg

from contract import logs
from contract.events import CloudEvent
from workers.deliver.sinks.base import SinkOptions, permanent, transient
from workers.deliver.sinks.postgres_rows import (
    CALL_COLUMNS,
    EVENT_COLUMNS,
    INSERT_EVENTS,
    TRANSCRIPT_COLUMNS,
    UPSERT_CALLS,
    UPSERT_TRANSCRIPTS,
    batch,
    columns,
)
from workers.deliver.sinks.postgres_schema import SchemaTooNew, check_url, migrate
from workers.retry import CallError, Permanent, Transient

log = logs.get("workers.deliver.sinks.postgres")

_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})
_ROW_CLASSES = frozenset({"22", "23"})  # this row's data: the others of its batch may be fine
MIGRATE_TIMEOUT_FACTOR = 6  # migrations may wait for another worker's (under the advisory lock)
_Waiting = list[tuple[CloudEvent, "asyncio.Future[None]"]]
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class RowRefused(Permanent):
    """PostgreSQL refused a value of the batch (SQLSTATE 22, 23): its events are written one by one to find it."""


class Lost(Transient):
    """The connection was lost mid-batch: the batch's outcome is unknown, and writing it again is safe."""


class PostgresSink:
    """One connection (made on first use, and again after a lost one) and one writer task per destination."""

    connect_at_start = True  # the worker connects it at start, so migrations run then (base.connect_early)

    def __init__(self, url: str, *, name: str, secret: str | None, options: SinkOptions) -> None:
        self.name = name
        self._target = check_url(url)
        self._password = secret
        self._timeout = options.timeout_s
        schema = self._target.schema
        self._statements = ((INSERT_EVENTS(schema), len(EVENT_COLUMNS)), (UPSERT_CALLS(schema), len(CALL_COLUMNS)),
                            (UPSERT_TRANSCRIPTS(schema), len(TRANSCRIPT_COLUMNS)))
        self._conn: asyncpg.Connection | None = None
        self._connecting = asyncio.Lock()
        self._queued: _Waiting = []
        self._writer: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self._connection(None)

    async def publish(self, event: CloudEvent, *, idempotency_key: str) -> None:
        """Returns once the transaction holding `event` committed; the key is not needed (the event id is)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((event, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        await future

    async def close(self) -> None:
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), self._timeout)
        self._fail_all(self._queued, "closed")
        self._queued = []
        await self._drop()

    async def _write_all(self) -> None:
        try:
            while self._queued:
                taken, self._queued = self._queued[:self._target.batch], self._queued[self._target.batch:]
                await self._write([(e, f) for e, f in taken if not f.done()])
        finally:
            self._writer = None

    async def _write(self, waiting: _Waiting) -> None:
        """Writes one batch and answers its futures; never raises."""
        if not waiting:
            return
        try:
            await self._apply_with_one_redo([e for e, _ in waiting])
        except CallError as e:
            if len(waiting) > 1 and isinstance(e, RowRefused):
                for one in waiting:  # find the event that cannot be written; the others go in
                    await self._write([one])
                return
            for _, future in waiting:
                if not future.done():
                    future.set_exception(_copy(e))
            return
        for _, future in waiting:
            if not future.done():
                future.set_result(None)

    async def _apply_with_one_redo(self, events: Sequence[CloudEvent]) -> None:
        """One batch; written again at once on a fresh connection when the first one was lost (idempotent)."""
        try:
            await self._apply(events)
        except Lost as e:
            log.info("sink.redo", sink=self.name, events=len(events), reason=e.reason)
            await self._apply(events)

    async def _apply(self, events: Sequence[CloudEvent]) -> None:
        had_connection = self._conn is not None
        conn = await self._connection(events[0])
        rows = batch(events)
        try:
            async with asyncio.timeout(self._timeout), conn.transaction():
                for (statement, count), table in zip(self._statements, (rows.events, rows.calls, rows.transcripts),
                                                     strict=True):
                    if table:
                        await conn.execute(statement, *columns(table, count))
        except _ERRORS as e:
            error = self._error(e, events[0] if len(events) == 1 else None)
            if _connection_level(e):
                await self._drop()
                if had_connection and isinstance(error, Transient):
                    raise Lost(error.reason) from e
            raise error from e

    async def _connection(self, event: CloudEvent | None) -> asyncpg.Connection:
        """The open connection, or a new one on which the schema is migrated (or found too new)."""
        async with self._connecting:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            try:
                conn = await asyncpg.connect(self._target.dsn, password=self._password, timeout=self._timeout,
                                             server_settings={"application_name": f"wavix-events {self.name}"})
            except _ERRORS as e:
                raise self._error(e, event) from e
            try:
                async with asyncio.timeout(self._timeout * MIGRATE_TIMEOUT_FACTOR):
                    before, after = await migrate(conn, self._target.schema)
            except SchemaTooNew as e:
                await _close(conn)
                raise permanent(self.name, event, f"postgresql: {e}") from e
            except _ERRORS as e:
                await _close(conn)
                raise self._error(e, event, doing="migrating the schema: ") from e
            if after != before:
                log.info("sink.migrated", sink=self.name, schema=self._target.schema, before=before, after=after)
            self._conn = conn
            return conn

    def _error(self, e: BaseException, event: CloudEvent | None, doing: str = "") -> CallError:
        state = getattr(e, "sqlstate", None) or ""
        label = f"{type(e).__name__}{f' {state}' if state else ''}"
        if _connection_level(e) or state[:2] in _TRANSIENT_CLASSES:
            return transient(self.name, event, f"postgresql: {doing}unavailable ({label})")
        error = permanent(self.name, event, f"postgresql: {doing}refused ({label}: {_first_line(e)})")
        if state[:2] in _ROW_CLASSES or isinstance(e, asyncpg.DataError):  # asyncpg's: a value it cannot send
            return RowRefused(error.reason, status=error.status)
        return error

    def _fail_all(self, waiting: _Waiting, why: str) -> None:
        for event, future in waiting:
            if not future.done():
                future.set_exception(transient(self.name, event, f"postgresql: {why}"))

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)


def _connection_level(e: BaseException) -> bool:
    """The connection cannot be trusted after `e` (lost, timed out mid-protocol, closed)."""
    if isinstance(e, OSError | TimeoutError | asyncpg.PostgresConnectionError):
        return True
    return isinstance(e, asyncpg.InterfaceError) and ("closed" in str(e) or "another operation" in str(e))


def _copy(error: CallError) -> CallError:
    """A batch's error as each of its events gets it: its own instance (the reason was logged once, for the batch)."""
    if isinstance(error, Transient):
        return Transient(error.reason, error.retry_after, status=error.status)
    return Permanent(error.reason, status=error.status)


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 1.0)
    except Exception:  # a connection that is gone already: nothing left to release but the socket
        conn.terminate()


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0][:200]


def create(url: str, *, name: str, secret: str | None, options: SinkOptions) -> PostgresSink:
    """The factory `workers.deliver.sinks.base.build_sink` calls for postgresql:// (`secret`: the password)."""
    return PostgresSink(url, name=name, secret=secret, options=options)
