"""The real PostgreSQL on loopback for the tests (`make services` starts it), one schema per test.

`TEST_POSTGRES_URL` (default postgresql://postgres@127.0.0.1:5432/test) is the database; every test works in a
schema of its own (`test_<hex>`), dropped when it ends, so tests never see each other's rows. A PostgreSQL that
does not answer is a failure, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PORT = urlsplit(POSTGRES_URL).port or 5432


def url_for(schema: str, *, port: int | None = None, user: str | None = None, **params: str) -> str:
    """The destination URL of `schema` (through `port`, as `user`, with more parameters)."""
    parts = urlsplit(POSTGRES_URL)
    netloc = f"{user or parts.username}@{parts.hostname}:{port or parts.port or 5432}"
    query = "&".join(f"{k}={v}" for k, v in {"schema": schema, **params}.items())
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass
class Schema:
    """A test's own schema and a connection to read it with."""

    name: str
    conn: asyncpg.Connection

    def url(self, **options: Any) -> str:
        return url_for(self.name, **options)

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        """`query` with `{s}` standing for the schema, as dicts."""
        return [dict(r) for r in await self.conn.fetch(query.format(s=f'"{self.name}"'), *args)]

    async def value(self, query: str, *args: Any) -> Any:
        return await self.conn.fetchval(query.format(s=f'"{self.name}"'), *args)

    async def counts(self) -> dict[str, int]:
        tables = ("calls", "call_transcripts", "events")
        return {t: int(await self.value(f"SELECT count(*) FROM {{s}}.{t}")) for t in tables}


@asynccontextmanager
async def schema(prefix: str = "test") -> AsyncIterator[Schema]:
    """A fresh schema name (nothing created: the sink's migrations do that), dropped with all in it at the end."""
    conn = await asyncpg.connect(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield Schema(name, conn)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()
