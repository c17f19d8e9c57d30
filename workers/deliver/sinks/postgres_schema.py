"""PostgreSQL destination: where its tables live (the URL) and how they come to be there (the migrations).

    postgresql://user@host:5432/db?schema=wavix[&batch=500][&sslmode=require ...]

`schema` (default `wavix`) is the schema that holds the destination's tables, created if absent; `batch` caps the
events one transaction writes (default 500); every other parameter is the driver's (asyncpg: sslmode, ...). The
password comes from the URL (`${VAR}` in the routing file), else from the destination's `secret`/`secret_env`,
else from libpq's PGPASSWORD or ~/.pgpass. `check_url` refuses a bad URL when the routing file is loaded, so
the error names its line (workers/deliver/route.py).

Migrations are the numbered files beside this module, `postgres_migrations/NNNN_name.sql`, applied in order,
each once, and recorded in `<schema>.schema_migrations (version, name, applied_at)`. `migrate` runs them at a sink's
first connection (so at worker start: workers/runtime/context.py) and from `wavix-events db migrate`: it reads the
version first, and only when it is behind takes `pg_advisory_xact_lock` on the schema's name and applies what is
missing in that one transaction (DDL is transactional in PostgreSQL): two workers starting together apply each file
once, and a failed file leaves the schema as it was. A schema newer than the files this worker has raises
`SchemaTooNew`: the worker refuses to write into tables it does not know (its deliveries are dead-lettered,
naming the destination) rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from workers.deliver.sinks.base import SinkError, query_params, scheme_of, without_params

if TYPE_CHECKING:
    import asyncpg

    from workers.deliver.route import Destination

MIGRATIONS = Path(__file__).with_name("postgres_migrations")
DEFAULT_SCHEMA = "wavix"
DEFAULT_BATCH = 500
OUR_PARAMS = frozenset({"schema", "batch"})
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNew(Exception):
    """The destination's schema has migrations this worker does not know."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(f"schema version {found} is newer than this worker knows ({known}): upgrade the worker")
        self.found, self.known = found, known


@dataclass(frozen=True)
class Target:
    """A checked destination URL: the driver's DSN (our parameters removed), the schema and the batch cap."""

    dsn: str
    schema: str
    batch: int


def check_url(url: str) -> Target:
    """Raises SinkError when `url` cannot name a PostgreSQL destination (the routing file's loader calls it)."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as e:
        raise SinkError(f"postgresql URL has a bad port ({e})") from e
    if not parts.path.strip("/"):
        raise SinkError("postgresql URL names no database (postgresql://user@host:5432/DATABASE?schema=...)")
    params = query_params(url)
    schema = params.get("schema", DEFAULT_SCHEMA)
    if not _IDENTIFIER.match(schema):
        raise SinkError(f"schema {schema!r}: use lower-case letters, digits and '_' (a plain SQL identifier)")
    size = params.get("batch", str(DEFAULT_BATCH))
    if not size.isdigit() or not 1 <= int(size) <= 10_000:
        raise SinkError(f"batch {size!r}: a whole number of events from 1 to 10000")
    return Target(dsn=without_params(url, OUR_PARAMS), schema=schema, batch=int(size))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """The migration files, in version order; numbers must run 1, 2, 3... without gaps."""
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise RuntimeError(f"{path.name}: migrations are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps: {[m.version for m in found]}")
    return tuple(found)


def known_version() -> int:
    return len(migrations())


async def version(conn: asyncpg.Connection, schema: str) -> int:
    """The schema's version: 0 when it has no version table (nothing applied yet)."""
    if await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations') is None:
        return 0
    return int(await conn.fetchval(f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_migrations'))


async def migrate(conn: asyncpg.Connection, schema: str, *, upto: int | None = None) -> tuple[int, int]:
    """Applies the missing migrations (up to `upto`, default all); returns (version before, version after).
    Raises SchemaTooNew, or asyncpg's error (a file that fails rolls back the whole run)."""
    target = known_version() if upto is None else upto
    current = await version(conn, schema)
    if current > known_version():
        raise SchemaTooNew(current, known_version())
    if current >= target:
        return current, current
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"wavix-events:migrate:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                           "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        before = current = await version(conn, schema)  # again, under the lock: another process may have run
        if current > known_version():
            raise SchemaTooNew(current, known_version())
        for step in migrations()[current:target]:
            await conn.execute(step.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", step.version,
                               step.name)
            current = step.version
    return before, current


async def migrate_destinations(destinations: Sequence[Destination], *, only: str | None = None,
                               timeout_s: float = 10.0) -> tuple[int, list[str]]:
    """`wavix-events db migrate`: migrates each PostgreSQL destination (or the one named `only`); returns the
    exit status (0, or 1 when one was unreachable, refused, or newer than this release) and a line for each."""
    import asyncpg

    chosen = [d for d in destinations if scheme_of(d.url) in ("postgresql", "postgres") and only in (None, d.name)]
    if not chosen:
        return 2, [f"no PostgreSQL destination{f' named {only!r}' if only else ''} in the routing file"]
    status, lines = 0, []
    for d in chosen:
        target = check_url(d.url)
        where = f"{d.name} ({d.where}, schema {target.schema})"
        try:
            conn = await asyncpg.connect(target.dsn, password=d.secret, timeout=timeout_s)
            try:
                before, after = await migrate(conn, target.schema)
            finally:
                await conn.close()
        except SchemaTooNew as e:
            status, line = 1, f"{where}: refused: {e}"
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as e:
            status, line = 1, f"{where}: failed: {type(e).__name__} {getattr(e, 'sqlstate', '') or ''}".rstrip()
        else:
            line = f"{where}: version {before} -> {after}" if after != before else f"{where}: up to date ({after})"
        lines.append(line)
    return status, lines
