"""Erasure in a PostgreSQL destination: its rows are ours to delete (workers/deliver/sinks/postgres.py writes them).

    find    SELECT call_id, account FROM <schema>.calls WHERE from_number/to_number is the number (in clear, or in the
            destination's hashed form when it hashes numbers), within the call dates asked
    delete  DELETE FROM <schema>.call_transcripts, calls, events WHERE call_id = ANY($1), in one transaction

The rows outlive every Redis key (they are kept until someone deletes them), so `forget --number` asks each
PostgreSQL destination which calls it holds for the number, beyond what the Redis index still knows. A
destination that masks numbers cannot be searched by number (a mask is shared by many numbers): its rows are
found by the call ids the other stores give. A schema that was never migrated holds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from contract.accounts import DEFAULT
from workers.deliver.route import Destination
from workers.deliver.sinks.base import scheme_of
from workers.deliver.sinks.postgres_schema import check_url

TABLES = ("call_transcripts", "calls", "events")  # every table with a `call_id` column
TIMEOUT_S = 10.0


def is_postgres(destination: Destination) -> bool:
    return scheme_of(destination.url) in ("postgresql", "postgres")


@dataclass
class PostgresStore:
    """One PostgreSQL destination's tables."""

    destination: Destination

    async def _connect(self) -> asyncpg.Connection:
        target = check_url(self.destination.url)
        conn = await asyncpg.connect(target.dsn, password=self.destination.secret, timeout=TIMEOUT_S)
        await conn.execute(f'SET search_path TO "{target.schema}"')
        return conn

    async def _migrated(self, conn: asyncpg.Connection) -> bool:
        return await conn.fetchval("SELECT to_regclass('calls') IS NOT NULL") is True

    async def find(self, numbers: list[str], since: datetime | None, until: datetime | None) -> dict[str, str]:
        """The calls whose `from` or `to` is one of `numbers` (each form the destination may hold): call id ->
        its account (`default` for a row written before events carried one)."""
        conn = await self._connect()
        try:
            if not await self._migrated(conn):
                return {}
            rows = await conn.fetch(
                "SELECT call_id, account FROM calls WHERE (from_number = ANY($1) OR to_number = ANY($1)) "
                "AND ($2::timestamptz IS NULL OR date >= $2) AND ($3::timestamptz IS NULL OR date <= $3)",
                numbers, since, until)
            return {r["call_id"]: r["account"] or DEFAULT for r in rows}
        finally:
            await conn.close()

    async def count(self, call_ids: list[str]) -> int:
        """How many rows `delete` would remove (a dry run)."""
        conn = await self._connect()
        try:
            if not await self._migrated(conn):
                return 0
            total = 0
            for table in TABLES:
                total += int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE call_id = ANY($1)", call_ids))
            return total
        finally:
            await conn.close()

    async def delete(self, call_ids: list[str]) -> int:
        """Deletes every row of the calls, in one transaction; returns how many went."""
        conn = await self._connect()
        try:
            if not await self._migrated(conn):
                return 0
            total = 0
            async with conn.transaction():
                for table in TABLES:
                    status = await conn.execute(f"DELETE FROM {table} WHERE call_id = ANY($1)", call_ids)
                    total += int(status.split()[-1])
            return total
        finally:
            await conn.close()
