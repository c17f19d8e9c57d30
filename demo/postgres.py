"""`make demo DEMO_ARGS='--postgres URL'`: the run's calls also go to PostgreSQL, and one query's answer is shown.

    --postgres postgresql://postgres@127.0.0.1:5432/test   -> a routing file with two destinations: the run's
    Redis stream (what the demo watches) and `postgres`, in schema demo_<run> unless the URL names one

When the database does not answer, the demo says so and runs without it. The schema is migrated before the
worker starts (as `wavix-events db migrate` would) and kept after the run, with the commands to query and to
drop it; its name is the run's, so runs never mix their calls.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from rich.console import Console
from rich.table import Table

from workers.deliver.sinks.base import SinkError, query_params, redact
from workers.deliver.sinks.postgres_schema import check_url, migrate

QUERY = "SELECT day, direction, calls, answered, answer_rate FROM {schema}.calls_per_day ORDER BY day, direction"
LANDED_WAIT_S = 15.0  # after the run settled, how long the last batches may take to land


@dataclass(frozen=True)
class Warehouse:
    """The run's PostgreSQL destination: its URL (with the schema) and the schema's name."""

    url: str
    schema: str


async def prepare(url: str, run_id: str, console: Console) -> Warehouse | None:
    """The destination for this run, its schema migrated; None (said on the console) when it cannot be used."""
    if "schema" not in query_params(url):
        parts = urlsplit(url)
        url = urlunsplit(parts._replace(query="&".join(filter(None, [parts.query, f"schema=demo_{run_id}"]))))
    try:
        target = check_url(url)
        conn = await asyncpg.connect(target.dsn, timeout=3.0)
    except (SinkError, ValueError) as e:
        console.print(f"[yellow]--postgres: not a usable URL ({e}); the demo runs without PostgreSQL.[/]")
        return None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        console.print(f"[yellow]PostgreSQL at {redact(url)} does not answer ({type(e).__name__}); "
                      "the demo runs without it.[/]", highlight=False)
        return None
    try:
        await migrate(conn, target.schema)
    finally:
        await conn.close()
    console.print(f"PostgreSQL: {redact(url)} · schema {target.schema}", highlight=False)
    return Warehouse(url, target.schema)


def routing(warehouse: Warehouse, redis_url: str, stream: str, directory: Path) -> Path:
    """A routing file sending every event to the run's stream and to PostgreSQL."""
    joiner = "&" if "?" in redis_url else "?"
    path = directory / "sinks.yaml"
    path.write_text("destinations:\n"
                    f"  - name: events\n    url: '{redis_url}{joiner}stream={stream}'\n"
                    f"  - name: postgres\n    url: '{warehouse.url}'\n    retry:\n      schedule: [1s, 2s, 5s]\n",
                    encoding="utf-8")
    return path


async def show(warehouse: Warehouse, completed: int, console: Console) -> None:
    """Waits (a while) for the run's completed calls to be in `calls`, then prints QUERY's answer."""
    try:
        await _show(warehouse, completed, console)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        console.print(f"[yellow]PostgreSQL could not be read after the run ({type(e).__name__}).[/]")


async def _show(warehouse: Warehouse, completed: int, console: Console) -> None:
    conn = await asyncpg.connect(check_url(warehouse.url).dsn, timeout=3.0)
    try:
        schema, deadline = f'"{warehouse.schema}"', time.monotonic() + LANDED_WAIT_S
        while (landed := await conn.fetchval(f"SELECT count(*) FROM {schema}.calls")) < completed:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        rows = await conn.fetch(QUERY.format(schema=schema))
    finally:
        await conn.close()
    table = Table(title=f"PostgreSQL: {landed} calls in {warehouse.schema}.calls", title_justify="left")
    for column in ("day", "direction", "calls", "answered", "answer_rate"):
        table.add_column(column, justify="left" if column in ("day", "direction") else "right")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)
    console.print(f"  {QUERY.format(schema=warehouse.schema)};", highlight=False, soft_wrap=True)
    console.print(f"  Drop it when done: DROP SCHEMA {warehouse.schema} CASCADE;", highlight=False)
