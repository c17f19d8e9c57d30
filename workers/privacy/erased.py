"""What an erasure says and reads of a call's events: `wavix.call.erased` itself (an id that is a function of the
call, so a repeated erasure is the same event, which the ledger drops), and the date and numbers of a call read
from one of its events (the event log's, a dead letter's, a Redis Stream destination's entry). Pure; used by
erase.py, by `forget` (the number it is given) and by docs/events.md's examples.
"""

from __future__ import annotations

from datetime import datetime

from contract import events as ev
from contract.accounts import DEFAULT
from contract.values import party
from workers.privacy import callkeys


def erased_event(call_id: str, at: datetime, account: str = DEFAULT) -> ev.CallErasedEvent:
    """`wavix.call.erased` for the call, of its account: its id is a function of the call, so a repeat is the same
    event."""
    ids = tuple(sorted(callkeys.event_ids(call_id)))
    return ev.CallErasedEvent(id=callkeys.erased_event_id(call_id), subject=call_id, time=at, account=account,
                              dataschema=ev.dataschema_for(ev.CallErased),
                              data=ev.CallErased(call_id=call_id, erased_at=at, event_ids=ids, account=account))


def normal_number(text: str) -> str | None:
    """The number as E.164, or None when it is none."""
    number = party(text).number
    return number if number and number.startswith("+") else None


def decoded(body: bytes) -> ev.CloudEvent | None:
    try:
        return ev.decode_event(body)
    except ValueError:  # msgspec's errors are ValueErrors
        return None


def event_time_ms(body: bytes) -> int | None:
    """The call's date from an event of it (completed carries it), else when the event was built."""
    event = decoded(body)
    if event is None:
        return None
    moment = getattr(event.data, "date", None) or event.time
    return int(moment.timestamp() * 1000)


def numbers_of(body: bytes) -> set[str]:
    event = decoded(body)
    if event is None or not isinstance(event.data, ev.CallEssentials):
        return set()
    return {n for n in (event.data.from_.number, event.data.to.number) if n}
