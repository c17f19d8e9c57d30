"""Forming: each destination gets its events in the form its routing-file entry allows (`redact:`).

    delivery.publish -> RecordedSink (the call's record: the event as built) -> FormedSink -> the transport's sink
                                                                               redact_event(event, its rules, key)

The one place a delivery takes its destination's form, for every way an event goes out: a first attempt, a
`deliver` job's retry, an operator's replay of the event log or of a dead letter. It sits under the recording
wrapper (workers/operate/observe.py), so the call's record and the console's summary keep the event as built, whichever
destination received it first, and over the transport, so every transport sends the same redacted bytes.

The rules are read at each publish from the worker's current destinations, so a routing reload (SIGHUP) that
changes only a destination's `redact:` applies to the next try without a new connection. The function itself is
contract/privacy.py's `redact_event`: pure, the event id unchanged, idempotent (a redacted event stays as it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from contract.events import CloudEvent
from contract.privacy import KEEP, Redaction, RedactKey, redact_event
from workers.deliver.route import Destination
from workers.deliver.sinks.base import Sink


class Routed(Protocol):
    """What forming reads: the worker's current destinations (workers/runtime/context.py's Resources)."""

    @property
    def destinations(self) -> Sequence[Destination]: ...


class FormedSink:
    """A sink whose events take its destination's form; `name`, `connect`, `close` and the rest pass through."""

    forms_events = True

    def __init__(self, sink: Sink, routed: Routed, key: RedactKey | None) -> None:
        self._sink = sink
        self._routed = routed
        self._key = key
        self.name: str = sink.name

    def __getattr__(self, item: str) -> Any:
        return getattr(self._sink, item)

    def rules(self) -> Redaction:
        return next((d.redact for d in self._routed.destinations if d.name == self.name), KEEP)

    async def connect(self) -> None:
        await self._sink.connect()

    async def close(self) -> None:
        await self._sink.close()

    async def publish(self, event: CloudEvent, *, idempotency_key: str) -> None:
        await self._sink.publish(redact_event(event, self.rules(), self._key), idempotency_key=idempotency_key)


def formed(sinks: dict[str, Sink], routed: Routed, key: RedactKey | None) -> dict[str, Sink]:
    """Every sink of `sinks` forming its events; one that does already (possibly under a wrapper) is kept."""
    return {name: sink if getattr(sink, "forms_events", False) else FormedSink(sink, routed, key)
            for name, sink in sinks.items()}


def key_of(secret: str) -> RedactKey | None:
    """REDACT_KEY, ready to hash; None when unset (then no destination may hash: workers/deliver/route.py)."""
    return RedactKey(secret) if secret else None
