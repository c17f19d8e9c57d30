"""A PostgreSQL destination that fails, with the real worker: down for a while is retried on its schedule and
loses nothing; a schema newer than the worker, or a role that may not write, is dead-lettered at once, each
letter naming the destination. The other destination gets every event meanwhile.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL
from tests.helpers.postgres import PORT, schema
from tests.helpers.sinks import TcpProxy
from tests.pipeline import pipeline
from tests.test_postgres_once import assert_applied_once, until, warehoused
from workers.deliver.jobs import decode_delivery
from workers.deliver.sinks.postgres_schema import known_version, migrate


async def test_a_database_down_for_a_while_is_retried_on_the_schedule_and_loses_nothing(tmp_path: Path) -> None:
    """PostgreSQL unreachable while the calls are processed: the worker does not crash, the stream gets every
    event, the warehouse's deliveries wait on their schedule (1 s steps here); once it is back they land, once,
    and nothing is dead-lettered."""
    proxy = await TcpProxy("127.0.0.1", PORT).start()
    await proxy.cut()
    try:
        async with warehoused(tmp_path, port=proxy.port) as (p, s):
            await p.place_and_send(5)
            worker = asyncio.create_task(p.run_worker())

            async def retry_waiting() -> bool:
                assert not worker.done(), "the worker ended while the database was down"
                jobs = f"arq:job:{p.settings.key_prefix}deliver:*:warehouse"
                return len(await p.events()) >= 5 and any([k async for k in p.redis.scan_iter(match=jobs)])

            await until(retry_waiting)
            await proxy.restore()
            await worker
            await assert_applied_once(p, s)
    finally:
        await proxy.cut()


@pytest.mark.parametrize("fault", ["newer schema", "no insert right"])
async def test_a_refusing_database_dead_letters_at_once_naming_the_destination(tmp_path: Path, fault: str) -> None:
    """A schema from a newer release, or a role without INSERT: each delivery to the warehouse is dead-lettered on
    its first try, its reason naming the destination and the cause; the stream destination has every event."""
    role = f"test_reader_{uuid.uuid4().hex[:10]}"
    async with schema() as s:
        await migrate(s.conn, s.name)
        if fault == "newer schema":
            await s.conn.execute(f'INSERT INTO "{s.name}".schema_migrations (version, name) VALUES ($1, $2)',
                                 known_version() + 1, "from_a_newer_release")
        else:
            await s.conn.execute(f'CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA "{s.name}" TO {role}; '
                                 f'GRANT SELECT ON ALL TABLES IN SCHEMA "{s.name}" TO {role}')
        stream = f"test:events:{uuid.uuid4().hex}"
        routing = tmp_path / "sinks.yaml"
        url = s.url(user=role) if fault == "no insert right" else s.url()
        routing.write_text(f"destinations:\n  - name: events\n    url: {REDIS_URL}?stream={stream}\n"
                           f"  - name: warehouse\n    url: {url}\n")
        try:
            async with pipeline(SandboxConfig(seed=7, transcript_share=0.0), SINKS_CONFIG=str(routing),
                                EVENTS_STREAM=stream) as p:
                await p.place_and_send(3)
                await p.run_worker()
                letters = await p.dead_letters()
                made = await p.events()
        finally:
            if fault == "no insert right":
                await s.conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        assert len(made) >= 3 and len(letters) == len(made)
        expected = "newer than this worker knows" if fault == "newer schema" else "42501"
        for letter in letters:
            delivery = decode_delivery(letter[b"payload"])
            reason = letter[b"reason"].decode()
            assert delivery.destination == "warehouse" and letter[b"attempts"] == b"1", letter
            assert reason.startswith("warehouse: postgresql:") and expected in reason, reason
        assert await s.value("SELECT count(*) FROM {s}.events") == 0
