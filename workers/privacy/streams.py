"""The streams an erasure reads entry by entry: the event log, the dead letters, Redis Stream destinations.

None of them is keyed by call, so they are read in pages of 500 (XRANGE), from the earliest time that can hold a
wanted call (the event log and a destination's stream only gain a call's entries after the call was made; the
dead letters, few and bounded by DEAD_LETTER_RETENTION, are read whole), and the matching entries are deleted by
id (XDEL). An entry matches when it names a wanted call id, or when its bytes hold one of the `needles`: the
number being erased, as its digits with no digit either side (a webhook body may write it without '+'), and its
hashed form for a destination that hashes numbers. Measured (100,000 entries of 2 KB, loopback Redis, this 2-CPU
machine shared with other work, two runs): 14,500-16,300 entries a second, so a week's event log at 150,000 events
a day (eventlog.py's sizing) takes about 65-75 s, once per `forget`; `--from` shortens it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis

from contract.events import ERASED, event_id
from contract.jobs import DELIVER
from workers.deliver.jobs import decode_delivery

PAGE = 500


@dataclass(frozen=True)
class Needles:
    """What makes an entry one of the erasure's: its call id is wanted, or its bytes hold a needle."""

    call_ids: frozenset[str] = frozenset()
    event_ids: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[bytes], ...] = ()

    def holds(self, blob: bytes) -> bool:
        return any(p.search(blob) for p in self.patterns)


def number_needles(number: str, hashed: Iterable[str] = ()) -> tuple[re.Pattern[bytes], ...]:
    """The number's digits with no digit either side, and each of its hashed forms."""
    digits = re.sub(r"\D", "", number)
    found = [re.compile(rb"(?<!\d)" + digits.encode() + rb"(?!\d)")] if digits else []
    return (*found, *(re.compile(re.escape(h.encode())) for h in hashed))


class _Subject(msgspec.Struct):
    subject: str = ""


_subject = msgspec.json.Decoder(_Subject).decode


def subject_of(event: bytes) -> str:
    """A CloudEvent's subject (the call id) without decoding the rest; "" when it is not one."""
    try:
        return _subject(event).subject
    except msgspec.DecodeError:
        return ""


@dataclass
class Matches:
    """Entries of one stream that belong to the erasure: entry id -> call id."""

    key: str
    entries: dict[bytes, str] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)  # call id -> its first entry's event, when kept

    @property
    def calls(self) -> set[str]:
        return set(self.entries.values())


Matcher = Callable[[dict[bytes, bytes]], str | None]


async def scan(redis: Redis, key: str, match: Matcher, *, since_ms: int = 0, keep: bytes = b"") -> Matches:
    """Every entry of stream `key` from `since_ms` on that `match` gives a call id for; `keep`: a field whose
    value is kept for each call's first entry (the event log's `event`, to read the call's date and numbers)."""
    found = Matches(key)
    start = f"{max(since_ms, 0)}-0"
    while True:
        page = await redis.xrange(key, min=start, max="+", count=PAGE)
        for entry_id, fields in page:
            call_id = match(fields)
            if call_id:
                found.entries[entry_id] = call_id
                if keep and call_id not in found.bodies:
                    found.bodies[call_id] = fields.get(keep, b"")
        if len(page) < PAGE:
            return found
        start = "(" + page[-1][0].decode()


async def delete(redis: Redis, matches: Matches, call_ids: set[str]) -> int:
    """XDELs the entries of the calls in `call_ids`; returns how many went."""
    ids = [entry for entry, call in matches.entries.items() if call in call_ids]
    gone = 0
    for start in range(0, len(ids), PAGE):
        gone += int(await redis.xdel(matches.key, *ids[start:start + PAGE]))
    return gone


def _erasure(payload: bytes) -> bool:
    try:
        delivery = decode_delivery(payload)
    except msgspec.DecodeError:
        return False
    return delivery.event_id == event_id(delivery.call_id, ERASED)


def event_log_match(needles: Needles) -> Matcher:
    """An event log entry (`id`, `type`, `event`): a wanted event id, or an event holding a needle."""
    def match(fields: dict[bytes, bytes]) -> str | None:
        event = fields.get(b"event", b"")
        if fields.get(b"id", b"").decode() in needles.event_ids or needles.holds(event):
            return subject_of(event) or None
        return None
    return match


def destination_match(needles: Needles) -> Matcher:
    """A Redis Stream destination's entry (`event`, `id`, `type`, `call_id`); `wavix.call.erased` is no data."""
    def match(fields: dict[bytes, bytes]) -> str | None:
        if fields.get(b"type", b"") == ERASED.encode():
            return None
        call_id = fields.get(b"call_id", b"").decode()
        if call_id in needles.call_ids or needles.holds(fields.get(b"event", b"")):
            return call_id or subject_of(fields.get(b"event", b"")) or None
        return None
    return match


def dead_letter_match(needles: Needles) -> Matcher:
    """A dead letter (`call_id`, `payload`, ...): a wanted call, or a payload holding a needle; a delivery of
    `wavix.call.erased` is no data (it stays, to be replayed)."""
    def match(fields: dict[bytes, bytes]) -> str | None:
        call_id = fields.get(b"call_id", b"").decode()
        if fields.get(b"kind") == DELIVER.encode() and _erasure(fields.get(b"payload", b"")):
            return None
        if call_id and (call_id in needles.call_ids or needles.holds(fields.get(b"payload", b""))):
            return call_id
        return None
    return match
