"""Enrichment: a fetched CDR (and transcript) in, a published event out. Pure: no I/O, no clock.

Every consumer would otherwise redo the same work, each slightly differently: normalise the numbers
to E.164, tell inbound from outbound, turn a disposition and `answered_by` into one outcome, read money
exactly, drop the secrets Wavix puts in links, and match transcript speakers to agent and client. It is
done once, here, and tested with data alone.

The webhook that started the job knows a little the CDR does not (`CallHints`): the post-call and
on-call `direction`, and the on-call `machine_detected`. The caller passes `now`, so the same inputs
always give the same event.
"""

from __future__ import annotations

import functools
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import msgspec
import phonenumbers

from contract import events as ev
from contract.errors import PayloadError
from contract.events import CallEssentials, Direction, Outcome, Party, Role, Turn
from contract.wavix import Cdr, Phone, Transcript, TranscriptTurn, decimal
from contract.webhooks import OnCallWebhook, PostCallWebhook

# The alert rules `alert_reasons` knows, in the order it reports them (settings may pick any subset).
ALERT_RULES = ("failed", "machine", "busy", "no_answer")

_DIRECTIONS: dict[str, Direction] = {"inbound": "inbound", "incoming": "inbound", "received": "inbound"}
_DIRECTIONS |= {"outbound": "outbound", "outgoing": "outbound", "placed": "outbound"}
_DISPOSITIONS = frozenset({"answered", "noanswer", "busy", "failed"})
# Dispositions other than "answered"; the last two are on-call event names, in case a CDR ever uses them.
_OUTCOMES: dict[str, Outcome] = {"noanswer": "no_answer", "busy": "busy", "failed": "failed"}
_OUTCOMES |= {"cancelled": "no_answer", "rejected": "busy"}
_NON_GEOGRAPHIC = frozenset({"001", "ZZ"})
_MS = Decimal("0.001")
_SHARE = Decimal("0.0001")


class CallHints(msgspec.Struct, frozen=True, kw_only=True):
    """What the webhook told us that the CDR lacks."""

    direction: str | None = None  # post-call / on-call `direction`
    machine_detected: bool | None = None  # on-call answering-machine detection


def hints_from(webhook: PostCallWebhook | OnCallWebhook) -> CallHints:
    """The hints a decoded webhook carries (the older post-call body said `answered_by` instead)."""
    if isinstance(webhook, OnCallWebhook):
        return CallHints(direction=webhook.direction, machine_detected=webhook.machine_detected)
    machine = True if (webhook.answered_by or "").strip().lower() == "machine" else None
    return CallHints(direction=webhook.direction, machine_detected=machine)


def completed_event(cdr: Cdr, *, hints: CallHints, rules: frozenset[str], now: datetime) -> ev.CallCompletedEvent:
    """`wavix.call.completed`, sent as soon as the CDR is in (the transcript comes minutes later)."""
    call = essentials(cdr, hints)
    data = ev.CallCompleted(
        **msgspec.structs.asdict(call),
        parent_call_id=cdr.parent_call_id or cdr.parent_uuid or None,
        date=utc(cdr.date),
        disposition=disposition(cdr.disposition),
        answered_by=answered_by(cdr, hints),
        duration_s=decimal(cdr.duration),
        currency="USD",
        per_minute=decimal(cdr.per_minute),
        charge=decimal(cdr.charge),
        forward_fee=decimal(cdr.forward_fee),
        destination=cdr.destination or None,
        sip_trunk=None if cdr.sip_trunk is None else str(cdr.sip_trunk),
        recording_url=public_link(cdr.recording_url),
        alert_reasons=tuple(alert_reasons(cdr, hints, rules)),
    )
    return _envelope(ev.CallCompletedEvent, ev.COMPLETED, data, cdr, now)


def transcribed_event(cdr: Cdr, transcript: Transcript, *, hints: CallHints, now: datetime) -> ev.CallTranscribedEvent:
    """`wavix.call.transcribed`: the turns with roles, talk time per speaker, and sentiment counts."""
    call = essentials(cdr, hints)
    roles = _roles(call)
    turns = tuple(_turn(turn, roles) for turn in transcript.turns)
    data = ev.CallTranscribed(
        **msgspec.structs.asdict(call),
        transcription_id=transcript.uuid,
        language=transcript.language or None,
        summary=transcript.call_summary or None,
        score=decimal(transcript.call_score),
        speakers=_speakers(turns, roles),
        sentiment=_sentiment_counts(turns),
        turns=turns,
    )
    return _envelope(ev.CallTranscribedEvent, ev.TRANSCRIBED, data, cdr, now)


def unavailable_event(cdr: Cdr, reason: str, *, hints: CallHints, now: datetime) -> ev.TranscriptionUnavailableEvent:
    """`wavix.call.transcription_unavailable`: consumers waiting for a transcript can stop waiting.

    `reason` is one of `contract.events.UNAVAILABLE_REASONS`; anything else is a bug in the caller (ValueError).
    """
    if reason not in ev.UNAVAILABLE_REASONS:
        raise ValueError(f"reason must be one of {sorted(ev.UNAVAILABLE_REASONS)}, got {reason!r}")
    call = essentials(cdr, hints)
    data = ev.TranscriptionUnavailable(**msgspec.structs.asdict(call), reason=cast(ev.UnavailableReason, reason))
    return _envelope(ev.TranscriptionUnavailableEvent, ev.UNAVAILABLE, data, cdr, now)


def transcript_event(
    cdr: Cdr, transcript: Transcript, *, hints: CallHints, now: datetime
) -> ev.CallTranscribedEvent | ev.TranscriptionUnavailableEvent:
    """The event a fetched transcript calls for: Wavix answers `status: failed` with an empty one."""
    if (transcript.status or "").strip().lower() == "failed":
        return unavailable_event(cdr, "failed", hints=hints, now=now)
    return transcribed_event(cdr, transcript, hints=hints, now=now)


def alert_reasons(cdr: Cdr, hints: CallHints, rules: frozenset[str]) -> list[str]:
    """Which of the enabled `rules` this call trips, in `ALERT_RULES` order; unknown rule names never fire.

    "machine" fires on `answered_by == machine` whatever the disposition: the disposition of a call
    that answering-machine detection hung up is not documented.
    """
    settled = disposition(cdr.disposition)
    fired = {
        "failed": settled == "failed",
        "machine": answered_by(cdr, hints) == "machine",
        "busy": settled == "busy",
        "no_answer": settled == "noanswer",
    }
    return [rule for rule in ALERT_RULES if rule in rules and fired[rule]]


def essentials(cdr: Cdr, hints: CallHints) -> CallEssentials:
    """What every event repeats. A CDR without a call id cannot be published (PayloadError)."""
    call_id = (cdr.id or "").strip()
    if not call_id:
        raise PayloadError("$.call_id", "the CDR names no call (neither call_id nor uuid)")
    return CallEssentials(
        call_id=call_id,
        direction=direction(cdr, hints),
        from_=party(cdr.from_),
        to=party(cdr.to),
        outcome=outcome(disposition(cdr.disposition), answered_by(cdr, hints)),
    )


def direction(cdr: Cdr, hints: CallHints) -> Direction:
    """The webhook's direction, else the CDR's, else outbound for a machine (detection is outbound-only)."""
    for said in (hints.direction, cdr.direction):
        known = _DIRECTIONS.get((said or "").strip().lower())
        if known is not None:
            return known
    return "outbound" if answered_by(cdr, hints) == "machine" else "unknown"


def answered_by(cdr: Cdr, hints: CallHints) -> str | None:
    """The CDR's `answered_by` (lower case), else "machine" when on-call detection said so."""
    said = (cdr.answered_by or "").strip().lower()
    if said:
        return said
    return "machine" if hints.machine_detected else None


def disposition(raw: str | None) -> str | None:
    """Lower case, and "No Answer" / "no_answer" read as the spec's "noanswer"; other text kept, lowered."""
    text = (raw or "").strip().lower()
    if not text:
        return None
    squashed = text.replace(" ", "").replace("_", "").replace("-", "")
    return squashed if squashed in _DISPOSITIONS else text


def outcome(settled: str | None, answered: str | None) -> Outcome:
    """One word for how the call went. A machine answer wins over the disposition (see `alert_reasons`);
    an unknown or missing disposition is a failure unless a human is known to have answered."""
    if answered == "machine":
        return "answered_machine"
    if settled == "answered":
        return "answered_human" if answered == "human" else "answered_unknown"
    if settled in _OUTCOMES:
        return _OUTCOMES[settled]
    return "answered_human" if answered == "human" else "failed"


def party(raw: Phone | None) -> Party:
    """E.164 and ISO country of a number sent with or without "+", as text or a JSON number.

    A number that does not parse keeps its raw text, with no country. The country is only given when
    the number is valid, or when its calling code belongs to a single country (+33 is France; +1 is not).
    """
    return _party("" if raw is None else str(raw).strip())


@functools.lru_cache(maxsize=8192)
def _party(text: str) -> Party:
    """Parsing a number costs ~0.1 ms and an account's own numbers recur in every call: cached, bounded."""
    if not text:
        return Party(None, None)
    try:
        number = phonenumbers.parse(text if text.startswith("+") else f"+{text}", None)
    except phonenumbers.NumberParseException:
        return Party(text, None)
    if not phonenumbers.is_possible_number(number):
        return Party(text, None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number) if phonenumbers.is_valid_number(number) else None
    if region is None:
        regions = phonenumbers.region_codes_for_country_code(number.country_code or 0)
        region = regions[0] if len(regions) == 1 else None
    return Party(e164, None if region in _NON_GEOGRAPHIC else region)


def public_link(url: str | None) -> str | None:
    """The link without query string, fragment or credentials: Wavix puts the API key there (`appid`).

    Everything after `?` goes, not just known secret names: a name we do not know could be a secret
    too, and the recording endpoint needs only its path and a bearer token.
    """
    text = (url or "").strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def utc(raw: str | None) -> datetime | None:
    """An ISO 8601 date as UTC (a date without offset is taken as UTC); None when it does not parse."""
    try:
        parsed = datetime.fromisoformat((raw or "").strip())
    except ValueError:
        return None
    return _as_utc(parsed)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


E = TypeVar("E", ev.CallCompletedEvent, ev.CallTranscribedEvent, ev.TranscriptionUnavailableEvent)


def _envelope(kind: type[E], event_type: str, data: CallEssentials, cdr: Cdr, now: datetime) -> E:
    """The CloudEvents envelope every event shares: its id follows from call and type alone."""
    return kind(
        id=ev.event_id(data.call_id, event_type),
        subject=data.call_id,
        time=_event_time(cdr, now),
        dataschema=ev.dataschema_for(type(data)),
        data=data,  # type: ignore[arg-type]
    )


def _event_time(cdr: Cdr, now: datetime) -> datetime:
    """The call's date when the CDR has one: the event is about the call, not about when we noticed."""
    return utc(cdr.date) or _as_utc(now)


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
    speaker = party(turn.speaker).number
    sentiment = (turn.sentiment or "").strip().lower() or None
    return Turn(
        speaker=speaker,
        role=roles.get(speaker or "", "unknown"),
        start_ms=round(turn.s),
        end_ms=round(turn.e),
        text=turn.text,
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
