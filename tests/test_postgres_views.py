"""The PostgreSQL destination's views answer the usual questions right, on a known set of calls written through
the sink; and every query of the Grafana dashboard (deploy/grafana/wavix-events-calls.json) runs on them.

The calls (dates UTC):

    call  day    direction  outcome           duration  to   charge  forward fee  transcript
    c1    06-30  outbound   answered_human          30  FR   0.10    -            transcribed (2 turns)
    c2    06-30  outbound   answered_machine        10  FR   0.05    0.01         unavailable (not_provisioned)
    c3    06-30  outbound   no_answer                0  US   0       -            -
    c4    06-30  inbound    answered_human         100  US   0.20    -            - (pending)
    c5    07-01  outbound   busy                     0  FR   -       -            -
    c6    07-01  outbound   answered_human          60  FR   0.30    -            - (pending)
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from contract import events as ev
from tests.helpers.postgres import Schema, schema
from tests.helpers.sinks import make_event
from workers.deliver.sinks import SinkOptions, open_sink

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "wavix-events-calls.json"
D1, D2 = date(2026, 6, 30), date(2026, 7, 1)
CALLS = [  # call, day, direction, outcome, duration, to country, charge, forward fee
    ("c1", D1, "outbound", "answered_human", "30", "FR", "0.10", None),
    ("c2", D1, "outbound", "answered_machine", "10", "FR", "0.05", "0.01"),
    ("c3", D1, "outbound", "no_answer", "0", "US", "0", None),
    ("c4", D1, "inbound", "answered_human", "100", "US", "0.20", None),
    ("c5", D2, "outbound", "busy", "0", "FR", None, None),
    ("c6", D2, "outbound", "answered_human", "60", "FR", "0.30", None),
]


def completed(call: str, day: date, direction: str, outcome: str, duration: str, country: str, charge: str | None,
              fee: str | None) -> ev.CallCompletedEvent:
    return make_event(call, date=datetime(day.year, day.month, day.day, 10, tzinfo=UTC), direction=direction,
                      outcome=outcome, duration_s=duration, to=ev.Party("+33170363950", country), charge=charge,
                      forward_fee=fee)


def transcript(call: str) -> ev.CallTranscribedEvent:
    essentials = {f: getattr(make_event(call).data, f) for f in ev.CallEssentials.__struct_fields__}
    turns = (ev.Turn(speaker="+14302287001", role="agent", start_ms=0, end_ms=2100, text="Hello", sentiment="Neutral"),
             ev.Turn(speaker="+33170363950", role="client", start_ms=2300, end_ms=4000, text="Hi", sentiment=None))
    data = ev.CallTranscribed(**essentials, transcription_id="tr-1", language="en", summary="Greetings.",
                              score="4.0", speakers=(), sentiment={"neutral": 1}, turns=turns)
    return ev.CallTranscribedEvent(id=ev.event_id(call, ev.TRANSCRIBED), subject=call, time=datetime.now(UTC),
                                   dataschema=ev.dataschema_for(ev.CallTranscribed), data=data)


def unavailable(call: str) -> ev.TranscriptionUnavailableEvent:
    essentials = {f: getattr(make_event(call).data, f) for f in ev.CallEssentials.__struct_fields__}
    return ev.TranscriptionUnavailableEvent(
        id=ev.event_id(call, ev.UNAVAILABLE), subject=call, time=datetime.now(UTC),
        dataschema=ev.dataschema_for(ev.TranscriptionUnavailable),
        data=ev.TranscriptionUnavailable(**essentials, reason="not_provisioned"))


@pytest.fixture
async def known() -> AsyncIterator[Schema]:
    """A schema holding the calls of the module's table, written through the sink."""
    async with schema() as s:
        sink = await open_sink(s.url(), name="warehouse", options=SinkOptions(timeout_s=5.0))
        try:
            for event in [*(completed(*c) for c in CALLS), transcript("c1"), unavailable("c2")]:
                await sink.publish(event, idempotency_key="k")
        finally:
            await sink.close()
        yield s


async def view(s: Schema, name: str, order: str = "day") -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in await s.rows(f"SELECT * FROM {{s}}.{name} ORDER BY {order}")]


async def test_calls_and_answer_rate_per_day_and_direction(known: Schema) -> None:
    """calls_per_day counts calls and answered ones (any answered_* outcome) per UTC day and direction."""
    assert await view(known, "calls_per_day", "day, direction") == [
        (D1, "inbound", 1, 1, Decimal("1.0000")), (D1, "outbound", 3, 2, Decimal("0.6667")),
        (D2, "outbound", 2, 1, Decimal("0.5000"))]


async def test_answering_machine_share(known: Schema) -> None:
    """machine_share_per_day: answered_machine over every answered call of the day."""
    assert await view(known, "machine_share_per_day") == [(D1, 3, 1, Decimal("0.3333")), (D2, 1, 0, Decimal("0"))]


async def test_cost_per_day_and_destination_country(known: Schema) -> None:
    """cost_per_day_country sums charge and forward fee by the callee's country, counting calls without a charge."""
    assert await view(known, "cost_per_day_country", "day, country") == [
        (D1, "FR", "USD", 2, Decimal("0.16"), 0), (D1, "US", "USD", 2, Decimal("0.20"), 0),
        (D2, "FR", "USD", 2, Decimal("0.30"), 1)]


async def test_duration_percentiles_of_answered_calls(known: Schema) -> None:
    """duration_per_day: p50 and p90 of the answered calls' seconds (linear interpolation), per direction."""
    assert await view(known, "duration_per_day", "day, direction") == [
        (D1, "inbound", 1, 100.0, 100.0), (D1, "outbound", 2, 20.0, 28.0), (D2, "outbound", 1, 60.0, 60.0)]


async def test_transcripts_available_and_their_turns(known: Schema) -> None:
    """transcripts_per_day splits the answered calls into transcribed, unavailable and pending; transcript_turns
    has one row per turn, in order, with its role."""
    assert await view(known, "transcripts_per_day") == [(D1, 3, 1, 1, 1, Decimal("0.3333")),
                                                       (D2, 1, 0, 0, 1, Decimal("0"))]
    turns = await known.rows("SELECT call_id, turn, role, text FROM {s}.transcript_turns ORDER BY turn")
    assert [tuple(t.values()) for t in turns] == [("c1", 1, "agent", "Hello"), ("c1", 2, "client", "Hi")]


def dashboard_queries() -> list[tuple[str, str]]:
    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]
    return [(p["title"], t["rawSql"]) for p in panels for t in p["targets"]]


async def test_every_dashboard_query_runs_on_the_views(known: Schema) -> None:
    """Each panel's SQL, with Grafana's time filter and the schema variable filled in, runs and finds rows; it
    reads only the views (not the tables, whose columns may change under a view that stays)."""
    views = {r["table_name"] for r in await known.rows(
        "SELECT table_name FROM information_schema.views WHERE table_schema = $1", known.name)}
    assert len(dashboard_queries()) >= 6
    for title, sql in dashboard_queries():
        read = set(re.findall(r"\$\{schema\}\.(\w+)", sql))
        assert read and read <= views, f"{title}: reads {read - views or 'nothing'}"
        filled = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN '2026-06-01' AND '2026-08-01'", sql)
        rows = await known.rows(filled.replace("${schema}", f'"{known.name}"').replace("{", "{{").replace("}", "}}"))
        assert rows, f"{title}: no rows"
