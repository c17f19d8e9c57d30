"""Enrichment: a fetched CDR (and transcript) in, a published event out. Pure: no I/O, no clock.

Every consumer would otherwise redo the same work, each slightly differently: normalise the numbers
to E.164, tell inbound from outbound, turn a disposition and `answered_by` into one outcome
(contract/values.py holds that table), read money exactly, drop the secrets Wavix puts in links, and match
transcript speakers to agent and client. It is done once, here, and tested with data alone.

What Wavix tells us beyond the CDR arrives as `CallHints`, gathered by the job from every webhook of the
call (whatever order they came in), the CDR list's `type`, the account's own numbers and the account's name
(every event carries it). Direction is, in this order: what the webhooks said (when they agree), the list's
`type`, the CDR's own `direction`, the account's numbers (a call to one of them is inbound, from one of them
outbound), and outbound for a machine answer (detection is outbound-only); `unknown` only when none of them
says it.
A value that cannot be published as sent becomes null (or `unknown`) with an `Anomaly` keeping the raw
value. The caller passes `now`, so the same inputs always give the same event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast

import msgspec

from contract import events as ev
from contract.accounts import DEFAULT
from contract.errors import PayloadError
from contract.events import ALERT_RULES, Anomaly, CallEssentials, Direction, FoundBy, Outcome, Party, Role, Turn
from contract.values import (
    answered_by_of,
    as_utc,
    disposition_of,
    outcome_of,
    party,
    plain_decimal,
    public_link,
    utc,
)
from contract.wavix import Cdr, Transcript, TranscriptTurn, number, text

__all__ = ["ALERT_RULES", "CallHints", "completed_event", "hints_from", "numbers_unknown", "transcript_event",
           "unavailable_event"]

_DIRECTIONS: dict[str, Direction] = {"inbound": "inbound", "incoming": "inbound", "received": "inbound"}
_DIRECTIONS |= {"outbound": "outbound", "outgoing": "outbound", "placed": "outbound"}
_MS = Decimal("0.001")
_SHARE = Decimal("0.0001")
_RAW_LIMIT = 200


class Said(Protocol):
    """What one webhook of the call said (contract.webhooks.WebhookFacts)."""

    @property
    def direction(self) -> str | None: ...
    @property
    def machine_detected(self) -> bool | None: ...
    @property
    def answered_by(self) -> str | None: ...


class CallHints(msgspec.Struct, frozen=True, kw_only=True):
    """What Wavix told us about the call outside its CDR."""

    direction: str | None = None  # from the webhooks or the CDR list's `type`, normalised
    machine_detected: bool | None = None  # on-call answering-machine detection
    answered_by: str | None = None  # the older post-call body's `answered_by`
    own_numbers: frozenset[str] = frozenset()  # the account's numbers, E.164
    found_by: FoundBy = "webhook"
    account: str = DEFAULT  # the account the call belongs to (contract/accounts.py)


def hints_from(
    said: Iterable[Said], *, listed_type: str | None = None, own_numbers: frozenset[str] = frozenset(),
    found_by: FoundBy = "webhook", account: str = DEFAULT,
) -> CallHints:
    """Everything the webhooks said, merged so the order they came in does not matter."""
    facts = list(said)
    directions = {d for d in (_DIRECTIONS.get((f.direction or "").strip().lower()) for f in facts) if d}
    if len(directions) != 1:
        directions = {d for d in (_DIRECTIONS.get((listed_type or "").strip().lower()),) if d}
    machine = True if any(f.machine_detected for f in facts) else None
    answered = sorted({a for a in (answered_by_of(f.answered_by)[0] for f in facts) if a})
    return CallHints(
        direction=next(iter(directions)) if len(directions) == 1 else None,
        machine_detected=machine,
        answered_by="machine" if "machine" in answered else (answered[0] if answered else None),
        own_numbers=own_numbers, found_by=found_by, account=account,
    )


class _Notes:
    """Collects the anomalies of one event while its fields are read."""

    def __init__(self) -> None:
        self.found: list[Anomaly] = []

    def note(self, field: str, raw: Any, problem: str) -> None:
        shown = msgspec.json.encode(raw).decode() if _encodable(raw) else repr(raw)
        self.found.append(Anomaly(field=field, raw=shown[:_RAW_LIMIT], problem=problem))

    def amount(self, field: str, raw: Any) -> str | None:
        value, problem = plain_decimal(raw)
        if problem is not None:
            self.note(field, raw, problem)
        return value

    def disposition(self, raw: Any) -> str | None:
        value, unknown = disposition_of(raw)
        if unknown:
            self.note("disposition", raw, "not a disposition we know; outcome unknown")
        return value

    def answered_by(self, cdr: Cdr, hints: CallHints) -> str | None:
        if answered_by_of(cdr.answered_by)[1]:
            self.note("answered_by", cdr.answered_by, "not an answered_by we know")
        return answered_by(cdr, hints)


def _encodable(raw: Any) -> bool:
    try:
        msgspec.json.encode(raw)
    except (TypeError, ValueError):
        return False
    return True


def completed_event(cdr: Cdr, *, hints: CallHints, rules: frozenset[str], now: datetime) -> ev.CallCompletedEvent:
    """`wavix.call.completed`, sent as soon as the CDR is in (the transcript comes minutes later)."""
    notes = _Notes()
    settled, answered = notes.disposition(cdr.disposition), notes.answered_by(cdr, hints)
    call = essentials(cdr, hints)
    amounts = {name: notes.amount(name, getattr(cdr, name)) for name in ("duration", "per_minute", "charge",
                                                                          "forward_fee")}
    data = ev.CallCompleted(
        **_fields(call, notes),
        parent_call_id=text(cdr.parent_call_id) or text(cdr.parent_uuid),
        date=utc(cdr.date),
        disposition=settled,
        answered_by=answered,
        duration_s=amounts["duration"],
        currency="USD",
        per_minute=amounts["per_minute"],
        charge=amounts["charge"],
        forward_fee=amounts["forward_fee"],
        destination=text(cdr.destination),
        sip_trunk=text(cdr.sip_trunk),
        recording_url=public_link(cdr.recording_url),
        alert_reasons=tuple(reasons_for(settled, call.outcome, rules)),
    )
    return _envelope(ev.CallCompletedEvent, ev.COMPLETED, data, cdr, now)


def transcribed_event(cdr: Cdr, transcript: Transcript, *, hints: CallHints, now: datetime) -> ev.CallTranscribedEvent:
    """`wavix.call.transcribed`: the turns with roles, talk time per speaker, and sentiment counts."""
    notes = _Notes()
    call = essentials(cdr, hints)
    roles = _roles(call)
    turns = tuple(_turn(turn, roles) for turn in transcript.spoken())
    data = ev.CallTranscribed(
        transcription_id=text(transcript.uuid),
        language=text(transcript.language),
        summary=text(transcript.call_summary),
        score=notes.amount("call_score", transcript.call_score),
        speakers=_speakers(turns, roles),
        sentiment=_sentiment_counts(turns),
        turns=turns,
        **_fields(call, notes),
    )
    return _envelope(ev.CallTranscribedEvent, ev.TRANSCRIBED, data, cdr, now)


def unavailable_event(cdr: Cdr, reason: str, *, hints: CallHints, now: datetime) -> ev.TranscriptionUnavailableEvent:
    """`wavix.call.transcription_unavailable`: consumers waiting for a transcript can stop waiting.

    `reason` is one of `contract.events.UNAVAILABLE_REASONS`; anything else is a bug in the caller (ValueError).
    """
    if reason not in ev.UNAVAILABLE_REASONS:
        raise ValueError(f"reason must be one of {sorted(ev.UNAVAILABLE_REASONS)}, got {reason!r}")
    notes = _Notes()
    call = essentials(cdr, hints)
    data = ev.TranscriptionUnavailable(**_fields(call, notes), reason=cast(ev.UnavailableReason, reason))
    return _envelope(ev.TranscriptionUnavailableEvent, ev.UNAVAILABLE, data, cdr, now)


def transcript_event(
    cdr: Cdr, transcript: Transcript, *, hints: CallHints, now: datetime
) -> ev.CallTranscribedEvent | ev.TranscriptionUnavailableEvent:
    """The event a fetched transcript calls for: Wavix answers `status: failed` with an empty one."""
    if (text(transcript.status) or "").lower() == "failed":
        return unavailable_event(cdr, "failed", hints=hints, now=now)
    return transcribed_event(cdr, transcript, hints=hints, now=now)


def reasons_for(disposition: str | None, outcome: Outcome, rules: frozenset[str]) -> list[str]:
    """Which of the enabled `rules` a call trips, in `ALERT_RULES` order.

    "failed" fires for a failed disposition and for an `unknown` outcome (a disposition we do not know, or
    none): an operator would rather look at a call we could not read than miss a failure. "machine" fires
    on a machine answer whatever the disposition (contract/values.py); "busy" for busy or rejected,
    "no_answer" for no answer or cancelled.
    """
    fired = {
        "failed": disposition == "failed" or outcome == "unknown",
        "machine": outcome == "answered_machine",
        "busy": disposition in ("busy", "rejected"),
        "no_answer": disposition in ("noanswer", "cancelled"),
    }
    return [rule for rule in ALERT_RULES if rule in rules and fired[rule]]


def essentials(cdr: Cdr, hints: CallHints) -> CallEssentials:
    """What every event repeats. A CDR without a call id cannot be published (PayloadError)."""
    call_id = cdr.id
    if not call_id:
        raise PayloadError("$.call_id", "the CDR names no call (neither call_id nor uuid)")
    answered = answered_by(cdr, hints)
    from_, to = party(cdr.from_), party(cdr.to)
    return CallEssentials(
        call_id=call_id,
        direction=direction(cdr, hints, from_, to, answered),
        from_=from_,
        to=to,
        outcome=outcome_of(disposition_of(cdr.disposition)[0], answered),
        found_by=hints.found_by,
        account=hints.account,
    )


def answered_by(cdr: Cdr, hints: CallHints) -> str | None:
    """The CDR's `answered_by` (human or machine), else what the webhooks said."""
    said = answered_by_of(cdr.answered_by)[0]
    return said or hints.answered_by or ("machine" if hints.machine_detected else None)


def _fields(call: CallEssentials, notes: _Notes) -> dict[str, Any]:
    fields = msgspec.structs.asdict(call)
    fields["anomalies"] = tuple(notes.found)
    return fields


def direction(cdr: Cdr, hints: CallHints, from_: Party, to: Party, answered: str | None) -> Direction:
    """See the module's docstring for the order of the sources."""
    known = _said_direction(cdr, hints)
    if known is not None:
        return known
    ours_from, ours_to = from_.number in hints.own_numbers, to.number in hints.own_numbers
    if ours_to != ours_from:
        return "inbound" if ours_to else "outbound"
    return "outbound" if answered == "machine" else "unknown"


def _said_direction(cdr: Cdr, hints: CallHints) -> Direction | None:
    """What the webhooks, the list's `type` or the CDR itself say, before the numbers are asked."""
    for said in (hints.direction, text(cdr.direction)):
        known = _DIRECTIONS.get((said or "").lower())
        if known is not None:
            return known
    return None


def numbers_unknown(cdr: Cdr, hints: CallHints) -> bool:
    """Whether the account's numbers must place this call and neither of its ends is one of them: a number
    bought since they were listed, so they are worth asking again (workers/fetch/hints.py)."""
    if _said_direction(cdr, hints) is not None:
        return False
    ends = {n for n in (party(cdr.from_).number, party(cdr.to).number) if n}
    return bool(ends) and not ends & hints.own_numbers


E = TypeVar("E", ev.CallCompletedEvent, ev.CallTranscribedEvent, ev.TranscriptionUnavailableEvent)


def _envelope(kind: type[E], event_type: str, data: CallEssentials, cdr: Cdr, now: datetime) -> E:
    """The CloudEvents envelope every event shares: its id follows from call and type alone."""
    return kind(
        id=ev.event_id(data.call_id, event_type),
        subject=data.call_id,
        time=_event_time(cdr, now),
        dataschema=ev.dataschema_for(type(data)),
        account=data.account,
        data=data,  # type: ignore[arg-type]
    )


def _event_time(cdr: Cdr, now: datetime) -> datetime:
    """The call's date when the CDR has one: the event is about the call, not about when we noticed."""
    return utc(cdr.date) or as_utc(now)


def _roles(call: CallEssentials) -> dict[str, Role]:
    """E.164 number -> role. Outbound: we placed the call from our agent's number; inbound: the reverse."""
    if call.direction == "outbound":
        agent, client = call.from_.number, call.to.number
    elif call.direction == "inbound":
        agent, client = call.to.number, call.from_.number
    else:
        return {}
    pairs: list[tuple[str | None, Role]] = [(client, "client"), (agent, "agent")]
    return {number: role for number, role in pairs if number is not None}


def _turn(turn: TranscriptTurn, roles: dict[str, Role]) -> Turn:
    """One turn; a null `text` is kept as "" (the turn's time is still talk time), null times read as 0."""
    speaker = party(turn.speaker).number
    sentiment = (text(turn.sentiment) or "").lower() or None
    return Turn(
        speaker=speaker,
        role=roles.get(speaker or "", "unknown"),
        start_ms=round(number(turn.s)),
        end_ms=round(number(turn.e)),
        text=turn.text if isinstance(turn.text, str) else "",
        sentiment=sentiment,
    )


def _speakers(turns: tuple[Turn, ...], roles: dict[str, Role]) -> tuple[ev.Speaker, ...]:
    """Talk time per speaker (sum of end - start), in order of first turn, and its share of the total."""
    talk_ms: dict[str | None, int] = {}
    for turn in turns:
        talk_ms[turn.speaker] = talk_ms.get(turn.speaker, 0) + max(turn.end_ms - turn.start_ms, 0)
    total = sum(talk_ms.values())
    return tuple(
        ev.Speaker(
            speaker=speaker,
            role=roles.get(speaker or "", "unknown"),
            talk_s=(Decimal(ms) / 1000).quantize(_MS),
            share=(Decimal(ms) / total if total else Decimal(0)).quantize(_SHARE),
        )
        for speaker, ms in talk_ms.items()
    )


def _sentiment_counts(turns: tuple[Turn, ...]) -> dict[str, int]:
    counts = Counter(turn.sentiment for turn in turns if turn.sentiment is not None)
    return dict(sorted(counts.items()))
