"""PostgreSQL destination, the pure part: events -> the rows of `calls`, `call_transcripts` and `events`, and the
three statements that write a batch of them (workers/deliver/sinks/postgres.py runs them in one transaction).

    wavix.call.completed                  -> events + calls
    wavix.call.transcribed                -> events + call_transcripts (status transcribed)
    wavix.call.transcription_unavailable  -> events + call_transcripts (status unavailable)

Each statement takes one array per column and inserts `unnest(...)` of them: one round trip and one plan for a
whole batch, whatever its size (asyncpg's binary arrays: ~9 µs of client CPU per row, against ~150 µs for a
statement per row; the measurement is in postgres.py). What keeps the tables as if every event were applied once,
whatever arrives twice, late, or at the same time from two workers:

- `events`: ON CONFLICT (event_id) DO NOTHING: the first copy is kept (an event's id is a function of call and
  type: contract/events.py; CloudEvents treats a repeated id as the same event);
- `calls`: ON CONFLICT (call_id) DO UPDATE only WHERE the new `event_time` is later: an older or repeated event
  changes nothing, not even `written_at`;
- `call_transcripts`: the same, except that `transcribed` outranks `unavailable` (the worker may send a
  transcript after "unavailable: timed_out", never the reverse: workers/process.py);
- within a batch one row per key (the newest; ON CONFLICT cannot touch a row twice in one statement), in key
  order, so two transactions upserting the same calls lock them in the same order and never deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import msgspec

from contract import events as ev
from contract.events import CloudEvent, encode_event

Row = tuple[Any, ...]
_RANK = {"unavailable": 1, "transcribed": 2}

CALL_COLUMNS = (
    ("call_id", "text"), ("event_id", "uuid"), ("event_time", "timestamptz"), ("date", "timestamptz"),
    ("parent_call_id", "text"), ("account", "text"), ("direction", "text"), ("from_number", "text"),
    ("from_country", "text"), ("to_number", "text"), ("to_country", "text"), ("outcome", "text"),
    ("disposition", "text"), ("answered_by", "text"), ("duration_s", "int4"), ("currency", "text"),
    ("per_minute", "numeric"), ("charge", "numeric"), ("forward_fee", "numeric"), ("destination", "text"),
    ("sip_trunk", "text"), ("recording_url", "text"), ("alert_reasons", "text"), ("found_by", "text"),
    ("anomalies", "int4"), ("event", "text"),
)
TRANSCRIPT_COLUMNS = (
    ("call_id", "text"), ("event_id", "uuid"), ("event_time", "timestamptz"), ("status", "text"),
    ("unavailable_reason", "text"), ("transcription_id", "text"), ("language", "text"), ("summary", "text"),
    ("score", "numeric"), ("turn_count", "int4"), ("agent_talk_s", "numeric"), ("client_talk_s", "numeric"),
    ("agent_share", "numeric"), ("client_share", "numeric"), ("sentiment", "text"), ("speakers", "text"),
    ("turns", "text"), ("event", "text"),
)
EVENT_COLUMNS = (("event_id", "uuid"), ("type", "text"), ("call_id", "text"), ("time", "timestamptz"),
                 ("event", "text"))
_JSONB = frozenset({"event", "sentiment", "speakers", "turns"})  # sent as text, cast in SQL


class Batch(msgspec.Struct, frozen=True):
    """One transaction's rows, one per key, in key order."""

    events: list[Row]
    calls: list[Row]
    transcripts: list[Row]


def batch(events: Iterable[CloudEvent]) -> Batch:
    """The rows for `events`: the first copy of each event, the newest event per call for each call table."""
    logged: dict[str, Row] = {}
    calls: dict[str, tuple[tuple[Any, ...], Row]] = {}
    transcripts: dict[str, tuple[tuple[Any, ...], Row]] = {}
    for event in events:
        text = encode_event(event).decode()
        logged.setdefault(event.id, (event.id, event.type, event.subject, event.time, text))
        if isinstance(event, ev.CallCompletedEvent):
            _keep_newest(calls, event.subject, (event.time,), call_row(event, text))
        elif isinstance(event, ev.CallTranscribedEvent | ev.TranscriptionUnavailableEvent):
            row = transcript_row(event, text)
            _keep_newest(transcripts, event.subject, (_RANK[row[3]], event.time), row)
    return Batch(events=[logged[k] for k in sorted(logged)], calls=[calls[k][1] for k in sorted(calls)],
                 transcripts=[transcripts[k][1] for k in sorted(transcripts)])


def _keep_newest(rows: dict[str, tuple[tuple[Any, ...], Row]], key: str, order: tuple[Any, ...], row: Row) -> None:
    held = rows.get(key)
    if held is None or order > held[0]:  # equal: the first one stays, as in the table
        rows[key] = (order, row)


def call_row(event: ev.CallCompletedEvent, text: str) -> Row:
    """A `calls` row, in CALL_COLUMNS order."""
    d = event.data
    return (
        d.call_id, event.id, event.time, d.date, d.parent_call_id, d.account, d.direction,
        d.from_.number, d.from_.country, d.to.number, d.to.country, d.outcome, d.disposition, d.answered_by,
        _whole_seconds(d.duration_s), d.currency, _decimal(d.per_minute), _decimal(d.charge), _decimal(d.forward_fee),
        d.destination, d.sip_trunk, d.recording_url, ",".join(d.alert_reasons), d.found_by, len(d.anomalies), text,
    )


def transcript_row(event: ev.CallTranscribedEvent | ev.TranscriptionUnavailableEvent, text: str) -> Row:
    """A `call_transcripts` row, in TRANSCRIPT_COLUMNS order."""
    d = event.data
    if isinstance(d, ev.TranscriptionUnavailable):
        return (d.call_id, event.id, event.time, "unavailable", d.reason, None, None, None, None, 0, None, None,
                None, None, "{}", "[]", "[]", text)
    agent = next((s for s in d.speakers if s.role == "agent"), None)
    client = next((s for s in d.speakers if s.role == "client"), None)
    return (
        d.call_id, event.id, event.time, "transcribed", None, d.transcription_id, d.language, d.summary,
        _decimal(d.score), len(d.turns), agent and agent.talk_s, client and client.talk_s, agent and agent.share,
        client and client.share, _json(d.sentiment), _json(d.speakers), _json(d.turns), text,
    )


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _whole_seconds(value: str | None) -> int | None:
    return None if value is None else int(Decimal(value).to_integral_value(ROUND_HALF_UP))


_encode = msgspec.json.Encoder(decimal_format="string").encode


def _json(value: Any) -> str:
    return _encode(value).decode()


def columns(rows: Sequence[Row], count: int) -> list[list[Any]]:
    """Rows -> one list per column: the arrays the statements take."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(count)]


# --- The statements; `schema` is a checked identifier (postgres_schema.check_url), quoted here. ---


def _insert(table: str, spec: Sequence[tuple[str, str]], conflict: str) -> Callable[[str], str]:
    names = ", ".join(name for name, _ in spec)
    arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(spec, 1))
    picks = ", ".join(f"{name}::jsonb" if name in _JSONB else _pick(name, kind) for name, kind in spec)
    return lambda schema: (f'INSERT INTO "{schema}".{table} AS t ({names}) SELECT {picks} '
                           f"FROM unnest({arrays}) AS u({names}) {conflict}")


def _pick(name: str, kind: str) -> str:
    return f"string_to_array({name}, ',')" if name == "alert_reasons" else name


def _updates(spec: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{name} = EXCLUDED.{name}" for name, _ in spec[1:]) + ", written_at = now()"


INSERT_EVENTS = _insert("events", EVENT_COLUMNS, "ON CONFLICT (event_id) DO NOTHING")
UPSERT_CALLS = _insert("calls", CALL_COLUMNS, f"ON CONFLICT (call_id) DO UPDATE SET {_updates(CALL_COLUMNS)} "
                                              "WHERE EXCLUDED.event_time > t.event_time")
UPSERT_TRANSCRIPTS = _insert(
    "call_transcripts", TRANSCRIPT_COLUMNS,
    f"ON CONFLICT (call_id) DO UPDATE SET {_updates(TRANSCRIPT_COLUMNS)} WHERE "
    "(EXCLUDED.status = 'transcribed' AND t.status = 'unavailable') "
    "OR (EXCLUDED.status = t.status AND EXCLUDED.event_time > t.event_time)")
