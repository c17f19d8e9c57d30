"""Watching the pipeline from the outside: the events stream, the dead letters, the queue, Slack's inbox.

The demo never asks the roles how they are doing: it reads what a consumer would read (the Redis Stream
of events, the dead-letter stream) and what Slack received, so the summary shows what really came out.
A call's latency is its completed event's stream entry time (Redis's clock, in the entry id) minus the
send time of the webhook the receiver accepted for it (this machine's clock: the same one).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from contract.events import TRANSCRIBED, UNAVAILABLE, CallCompletedEvent, decode_event
from demo.processes import RunNames
from sandbox.slack import SlackStandIn

_DIGEST = re.compile(r"^(\d+) call alerts?:")


@dataclass
class Alerts:
    """Slack messages the stand-in accepted, split into single alerts and digests."""

    singles: int = 0
    digests: int = 0
    digested: int = 0  # alerts inside the digests
    rate_limited: int = 0  # 429s Slack answered (the worker waits and retries)
    example_single: dict[str, Any] | None = None
    example_digest: dict[str, Any] | None = None

    @property
    def delivered(self) -> int:
        return self.singles + self.digested


def slack_alerts(slack: SlackStandIn) -> Alerts:
    alerts = Alerts(rate_limited=sum(1 for r in slack.received if r.status == 429))
    for received in slack.accepted():
        message = received.message
        match = _DIGEST.match(str(message.get("text", "")))
        if match:
            alerts.digests += 1
            alerts.digested += int(match.group(1))
            alerts.example_digest = alerts.example_digest or message
        else:
            alerts.singles += 1
            alerts.example_single = alerts.example_single or message
    return alerts


@dataclass
class Outcomes:
    """What the events stream holds so far for this run."""

    by_type: Counter[str] = field(default_factory=Counter)
    completed: set[str] = field(default_factory=set)
    recovered: set[str] = field(default_factory=set)  # completed calls found by reconciliation
    direction_unknown: int = 0  # completed calls published with direction unknown (the sandbox knows them all)
    anomalies: int = 0  # values published as null or unknown, with the raw value kept in the event
    answered: set[str] = field(default_factory=set)  # calls whose transcript outcome must follow
    transcript_done: set[str] = field(default_factory=set)
    alerts_expected: int = 0
    completed_at_ms: dict[str, int] = field(default_factory=dict)  # call id -> its completed entry's time
    example: bytes | None = None  # one completed event, as published
    dead_letters: int = 0
    queued_jobs: int = 0
    pending_alerts: int = 0
    _last_id: bytes = b"0-0"

    def latencies_ms(self, accepted_at: dict[str, float]) -> list[float]:
        """Per call: completed event's stream entry time minus the send time of its accepted webhook."""
        return sorted(at - accepted_at[call] * 1000 for call, at in self.completed_at_ms.items() if call in accepted_at)

    def take(self, entry_id: bytes, raw: bytes) -> None:
        """Counts one stream entry; a completed event also records the call's facts and entry time."""
        event = decode_event(raw)
        self.by_type[event.type] += 1
        call_id = event.subject
        if event.type in (TRANSCRIBED, UNAVAILABLE):
            self.transcript_done.add(call_id)
        if not isinstance(event, CallCompletedEvent) or call_id in self.completed:
            return
        self.completed.add(call_id)
        self.direction_unknown += event.data.direction == "unknown"
        self.anomalies += len(event.data.anomalies)
        if event.data.found_by == "reconcile":
            self.recovered.add(call_id)
        self.completed_at_ms[call_id] = int(entry_id.split(b"-")[0])
        if event.data.disposition == "answered":
            self.answered.add(call_id)
        self.alerts_expected += len(event.data.alert_reasons)
        if self.example is None and event.data.answered_by == "human":
            self.example = raw

    async def refresh(self, redis: Redis, names: RunNames) -> None:
        """Reads the stream entries that arrived since the last call, and the queue and dead-letter counts."""
        while True:
            batch = await redis.xread({names.events: self._last_id}, count=1000)
            entries = batch[0][1] if batch else []
            for entry_id, fields in entries:
                self._last_id = entry_id
                self.take(entry_id, fields[b"event"])
            if len(entries) < 1000:
                break
        self.dead_letters = await redis.xlen(names.dead)
        self.queued_jobs = await redis.zcard(names.queue)
        self.pending_alerts = await redis.zcard(f"{names.prefix}alerts:due")

    def settled(self, calls: int) -> bool:
        """Every call completed, every answered call's transcript decided, nothing queued or pending."""
        return (len(self.completed) >= calls and self.transcript_done >= self.answered
                and self.queued_jobs == 0 and self.pending_alerts == 0)


def percentile(ordered: list[float], share: float) -> float | None:
    """The value at `share` (0..1) of a sorted list, nearest rank; None when empty."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]
