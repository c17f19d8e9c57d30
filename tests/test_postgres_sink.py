"""The PostgreSQL destination against the real PostgreSQL: its tables, its upsert rules, its batches, its
migrations and its refusals. Each test has a schema of its own (tests/helpers/postgres.py).

The shared conformance suite (tests/test_sinks_conformance.py) runs against it too; the worker end to end
(redelivery, replay, racing workers, lost COMMITs) is tests/test_postgres_once.py.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import msgspec
import pytest

from contract import events as ev
from tests.helpers.event_examples import real_events
from tests.helpers.postgres import PORT, POSTGRES_URL, Schema, schema
from tests.helpers.sinks import make_event
from wavix_events.cli import main as cli
from workers.deliver.route import RouteError, parse_destinations
from workers.deliver.sinks import Sink, SinkOptions, build_sink, open_sink
from workers.deliver.sinks.postgres_schema import known_version, migrate, migrations, version
from workers.retry import Permanent

OPTIONS = SinkOptions(timeout_s=2.0)


async def sink_for(s: Schema, name: str = "warehouse", **url: str) -> Sink:
    return await open_sink(s.url(**url), name=name, options=OPTIONS)


async def publish_all(sink: Sink, events: list[ev.CloudEvent]) -> list[BaseException | None]:
    return await asyncio.gather(*(sink.publish(e, idempotency_key=f"{e.id}:x") for e in events),
                                return_exceptions=True)


def newer(event: ev.CallCompletedEvent, seconds: float, **data: object) -> ev.CallCompletedEvent:
    changed = msgspec.structs.replace(event.data, **data)
    return msgspec.structs.replace(event, time=event.time + timedelta(seconds=seconds), data=changed)


async def test_each_event_type_lands_in_its_table_with_typed_columns() -> None:
    """completed -> `calls` (timestamptz, numeric money, integer seconds, E.164, countries, the event as jsonb);
    transcribed and unavailable -> `call_transcripts`; every event -> `events`."""
    completed, transcribed, unavailable, odd = (e for _, e in real_events())
    async with schema() as s:
        sink = await sink_for(s)
        try:
            assert await publish_all(sink, [completed, transcribed, unavailable, odd]) == [None] * 4
        finally:
            await sink.close()
        [call] = await s.rows("SELECT * FROM {s}.calls WHERE call_id = $1", completed.subject)
        assert call["date"] == datetime(2026, 6, 30, 10, 0, tzinfo=UTC) and call["event_time"] == completed.time
        assert (call["charge"], call["per_minute"], call["forward_fee"]) == (Decimal("0.0189"), Decimal("0.027"), 0)
        assert (call["duration_s"], call["from_number"], call["to_number"]) == (42, "+14302287001", "+33170363950")
        assert (call["from_country"], call["to_country"], call["direction"]) == ("US", "FR", "outbound")
        assert (call["outcome"], call["found_by"], call["account"]) == ("answered_human", "webhook", "default")
        assert str(call["event_id"]) == completed.id and ev.decode_event(call["event"]) == completed
        [anomalous] = await s.rows("SELECT * FROM {s}.calls WHERE call_id = $1", odd.subject)
        assert (anomalous["outcome"], anomalous["charge"], anomalous["anomalies"]) == ("unknown", None, 2)
        transcripts = {r["call_id"]: r for r in await s.rows("SELECT * FROM {s}.call_transcripts")}
        done, none = transcripts[transcribed.subject], transcripts[unavailable.subject]
        assert (done["status"], done["turn_count"], done["language"], done["score"]) == ("transcribed", 2, "en",
                                                                                          Decimal("4.2"))
        assert done["agent_share"] + done["client_share"] == 1 and done["summary"].startswith("The client")
        assert (none["status"], none["unavailable_reason"], none["turn_count"]) == ("unavailable", "not_provisioned", 0)
        assert {r["type"] for r in await s.rows("SELECT type FROM {s}.events")} == {
            ev.COMPLETED, ev.TRANSCRIBED, ev.UNAVAILABLE}
        assert await s.counts() == {"calls": 2, "call_transcripts": 2, "events": 4}


async def test_a_repeat_or_an_older_event_changes_nothing_and_a_newer_one_updates() -> None:
    """Upsert by call id: the same event again, or one with an earlier `time`, leaves the row untouched (same
    xmin); a later one replaces it. `events` keeps the first copy of an event id."""
    event = make_event(charge="0.01")
    async with schema() as s:
        sink = await sink_for(s)
        try:
            await sink.publish(event, idempotency_key="k")
            first = await s.value("SELECT xmin::text FROM {s}.calls")
            await sink.publish(event, idempotency_key="k")
            await sink.publish(newer(event, -60, charge="0.99"), idempotency_key="k")
            assert await s.value("SELECT xmin::text FROM {s}.calls") == first
            await sink.publish(newer(event, 60, charge="0.02"), idempotency_key="k")
        finally:
            await sink.close()
        assert await s.value("SELECT charge FROM {s}.calls") == Decimal("0.02")
        assert await s.value("SELECT event->'data'->>'charge' FROM {s}.events") == "0.01"
        assert await s.counts() == {"calls": 1, "call_transcripts": 0, "events": 1}


async def test_a_transcript_is_never_replaced_by_unavailable() -> None:
    """`transcribed` outranks `transcription_unavailable` whichever arrives first (the worker may send a
    transcript after "timed_out", never the reverse)."""
    _, transcribed, _, _ = (e for _, e in real_events())
    essentials = {f: getattr(transcribed.data, f) for f in ev.CallEssentials.__struct_fields__}
    late = ev.TranscriptionUnavailableEvent(
        id=ev.event_id(transcribed.subject, ev.UNAVAILABLE), subject=transcribed.subject,
        time=transcribed.time + timedelta(hours=1), dataschema=ev.dataschema_for(ev.TranscriptionUnavailable),
        data=ev.TranscriptionUnavailable(**essentials, reason="timed_out"))
    async with schema() as s:
        sink = await sink_for(s)
        try:
            for order in ([late, transcribed], [transcribed, late]):
                for event in order:
                    await sink.publish(event, idempotency_key="k")
                assert await s.value("SELECT status FROM {s}.call_transcripts") == "transcribed"
                await s.conn.execute(f'TRUNCATE "{s.name}".call_transcripts')
        finally:
            await sink.close()


async def test_concurrent_publishes_are_written_in_few_transactions() -> None:
    """300 deliveries at once go in a handful of transactions (rows of one transaction share its xmin), and each
    publish returns only once its transaction committed."""
    events = [make_event() for _ in range(300)]
    async with schema() as s:
        sink = await sink_for(s, batch="200")
        try:
            assert await publish_all(sink, events) == [None] * 300
        finally:
            await sink.close()
        transactions = await s.value("SELECT count(DISTINCT xmin::text) FROM {s}.calls")
        assert await s.counts() == {"calls": 300, "call_transcripts": 0, "events": 300}
        assert 2 <= transactions <= 4, transactions  # never more than `batch` (200) events in one


async def test_an_event_postgresql_refuses_fails_alone() -> None:
    """A value a constraint refuses (a country that is no ISO code) fails that delivery (Permanent, SQLSTATE
    named); the other events of its batch are written."""
    bad = make_event(to=ev.Party("+33170363950", "france"))
    good = [make_event() for _ in range(9)]
    async with schema() as s:
        sink = await sink_for(s)
        try:
            outcomes = await publish_all(sink, [*good[:5], bad, *good[5:]])
        finally:
            await sink.close()
        [refused] = [o for o in outcomes if o is not None]
        assert isinstance(refused, Permanent) and "23514" in refused.reason and refused.reason.startswith("warehouse:")
        assert await s.counts() == {"calls": 9, "call_transcripts": 0, "events": 9}


async def test_migrations_from_empty_and_from_the_previous_version() -> None:
    """From nothing every migration applies in order; from the previous version only the last one does, and
    what the tables held stays. Each is recorded once in `schema_migrations`."""
    async with schema() as s:
        assert await version(s.conn, s.name) == 0
        assert await migrate(s.conn, s.name) == (0, known_version())
        assert await migrate(s.conn, s.name) == (known_version(), known_version())
    async with schema() as s:
        previous = known_version() - 1
        assert await migrate(s.conn, s.name, upto=previous) == (0, previous)
        if previous >= 1:  # the tables exist from 0001 on: a call written then survives the upgrade
            await s.conn.execute(f'INSERT INTO "{s.name}".calls (call_id, event_id, event_time, direction, outcome, '
                                 "currency, found_by, event) VALUES ('c-1', $1, now(), 'inbound', 'busy', 'USD', "
                                 "'webhook', '{}')", uuid.uuid4())
        assert await migrate(s.conn, s.name) == (previous, known_version())
        assert await s.value("SELECT count(*) FROM {s}.calls") == (1 if previous >= 1 else 0)
        recorded = await s.rows("SELECT version, name FROM {s}.schema_migrations ORDER BY version")
        assert recorded == [{"version": m.version, "name": m.name} for m in migrations()]


async def test_workers_starting_together_apply_each_migration_once() -> None:
    """Three connections migrating the same empty schema at once: the advisory lock lets one apply, the others
    find it done; nobody fails."""
    async with schema() as s:
        conns = [await asyncpg.connect(POSTGRES_URL) for _ in range(3)]
        try:
            results = await asyncio.gather(*(migrate(c, s.name) for c in conns))
        finally:
            for c in conns:
                await c.close()
        assert sorted(results) == [(0, known_version()), (known_version(), known_version()),
                                   (known_version(), known_version())]
        assert await s.value("SELECT count(*) FROM {s}.schema_migrations") == known_version()


async def test_a_newer_schema_is_refused_naming_the_destination() -> None:
    """A schema migrated by a newer release: the sink writes nothing and every publish is Permanent (dead-
    lettered), its reason naming the destination and both versions."""
    async with schema() as s:
        await migrate(s.conn, s.name)
        await s.conn.execute(f'INSERT INTO "{s.name}".schema_migrations (version, name) VALUES ($1, $2)',
                             known_version() + 5, "from_a_newer_release")
        sink = build_sink(s.url(), name="warehouse", options=OPTIONS)
        try:
            with pytest.raises(Permanent) as caught:
                await sink.publish(make_event(), idempotency_key="k")
        finally:
            await sink.close()
        reason = caught.value.reason
        assert reason.startswith("warehouse:") and f"version {known_version() + 5} is newer" in reason
        assert await s.value("SELECT count(*) FROM {s}.events") == 0


async def test_a_role_without_insert_rights_is_refused_permanently() -> None:
    """Connected as a role that may read but not write the tables: Permanent, naming the destination and
    PostgreSQL's error (42501), so the delivery is dead-lettered rather than retried for a day."""
    role = f"test_reader_{uuid.uuid4().hex[:10]}"
    async with schema() as s:
        await migrate(s.conn, s.name)
        await s.conn.execute(f'CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA "{s.name}" TO {role}; '
                             f'GRANT SELECT ON ALL TABLES IN SCHEMA "{s.name}" TO {role}')
        try:
            sink = await open_sink(s.url(user=role), name="warehouse", options=OPTIONS)
            try:
                with pytest.raises(Permanent) as caught:
                    await sink.publish(make_event(), idempotency_key="k")
            finally:
                await sink.close()
        finally:
            await s.conn.execute(f'DROP OWNED BY {role}; DROP ROLE {role}')
        assert caught.value.reason.startswith("warehouse:") and "42501" in caught.value.reason


@pytest.mark.parametrize(("url", "problem"), [
    ("postgresql://u@db.internal:54x2/calls", "bad port"),
    ("postgresql://u@db.internal:5432/", "names no database"),
    ("postgresql://u@db.internal:5432/calls?schema=Wavix-Calls", "plain SQL identifier"),
    ("postgresql://u@db.internal:5432/calls?batch=0", "from 1 to 10000"),
    ("postgresql:///calls", "has no host"),
])
def test_a_malformed_url_is_refused_at_load_with_its_line(url: str, problem: str) -> None:
    """The routing file's loader refuses a PostgreSQL URL it cannot use, naming the line, never the URL."""
    text = f"destinations:\n  - name: redis\n    url: redis://h/0?stream=s\n  - name: warehouse\n    url: {url}\n"
    with pytest.raises(RouteError) as caught:
        parse_destinations(text, {})
    message = str(caught.value)
    assert message.startswith("sinks.yaml:5:") and problem in message and "db.internal" not in message


def test_the_password_may_come_from_the_environment_and_the_file_names_it_not() -> None:
    """`${VAR}` in the URL and `secret_env` both give the password; neither appears in the destination's repr."""
    text = ("destinations:\n  - name: warehouse\n    url: postgresql://wavix:${PG_PASSWORD}@db:5432/calls?schema=wavix\n"
            "  - name: other\n    url: postgresql://wavix@db:5432/calls\n    secret_env: PG_PASSWORD\n")
    first, second = parse_destinations(text, {"PG_PASSWORD": "s3cret"})
    assert first.url == "postgresql://wavix:s3cret@db:5432/calls?schema=wavix" and second.secret == "s3cret"
    assert "s3cret" not in repr(first) + repr(second) and first.where == "postgresql://db:5432/calls"


async def test_db_migrate_upgrades_each_postgresql_destination_and_refuses_a_newer_schema(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`wavix-events db migrate` brings every postgresql:// destination of the routing file to this release's
    version (then says it is up to date), and exits 1 naming the destination when a schema is newer."""
    async with schema() as s:
        routing = tmp_path / "sinks.yaml"
        routing.write_text(f"destinations:\n  - name: stream\n    url: redis://127.0.0.1:6379/0?stream=x\n"
                           f"  - name: warehouse\n    url: {s.url()}\n")
        monkeypatch.setenv("SINKS_CONFIG", str(routing))
        said = []
        for _ in range(2):
            assert await asyncio.to_thread(cli, ["db", "migrate"]) == 0
            said.append(capsys.readouterr().out.strip())
        where = f"warehouse (postgresql://127.0.0.1:{PORT}/test, schema {s.name})"
        assert said == [f"{where}: version 0 -> {known_version()}", f"{where}: up to date ({known_version()})"]
        await s.conn.execute(f'INSERT INTO "{s.name}".schema_migrations (version, name) VALUES ($1, $2)',
                             known_version() + 1, "from_a_newer_release")
        assert await asyncio.to_thread(cli, ["db", "migrate", "--destination", "warehouse"]) == 1
        refused = f"refused: schema version {known_version() + 1} is newer than this worker knows ({known_version()})"
        assert capsys.readouterr().out.strip() == f"{where}: {refused}: upgrade the worker"
        assert await asyncio.to_thread(cli, ["db", "migrate", "--destination", "stream"]) == 2
        assert "no PostgreSQL destination named 'stream'" in capsys.readouterr().err
