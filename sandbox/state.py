"""The running sandbox's state: which calls exist, when their transcripts are ready, what was asked of it.

`Sandbox(config)` is created once and shared by the API (`sandbox.api.create_app`), the admin endpoints
and the webhook sender, all in one event loop: nothing here blocks or locks. A call exists (its CDR is
servable) from the moment it is placed, which is before any of its webhooks is sent; its transcript is
ready `transcript_delay_s` after its first webhook (`mark_sent`) or, if none is ever sent, after it was
placed. Faults can be swapped while running (`set_faults`), e.g. by a test between two phases.

Dates: with `config.start`, call i starts `i * spacing_s` after it (so a run can straddle midnight UTC);
without, each call lies inside the `window_s` before it is placed, at a seeded point, and has ended by
then (a call longer than the window ends as it is placed).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import msgspec

from sandbox.calls import SimCall, Transcript, format_time, generate_call, parse_time
from sandbox.config import SandboxConfig
from sandbox.faults import Faults


class Sandbox:
    """The calls placed so far, their transcript clocks, the live fault shares and request counters."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.faults: Faults = config.faults
        self.fault_rng = random.Random(f"wavix-sandbox:{config.seed}:faults")
        self.requests: Counter[str] = Counter()  # "GET /v1/cdrs/{id} 200", "fault 429", ...
        self._wall = wall
        self._monotonic = monotonic
        self._calls: dict[str, SimCall] = {}
        self._ready_at: dict[str, float] = {}
        self._sent: set[str] = set()
        self._next_index = 0
        self._listings: dict[str, list[SimCall]] = {}  # direction -> calls by (date, index); reset by add()
        self._order: list[str] = []  # call ids in the order placed
        self._position: dict[str, int] = {}
        self.version = 0  # grows whenever calls are added: the export's ETag
        self.call_webhooks: dict[int, dict[str, str]] = {}  # account -> event type -> URL (sandbox/accounts.py)
        self.account_faults: dict[int, Faults] = {}  # account -> its own faults, instead of `faults`
        self._changed_at = wall()

    def place(self, count: int, account: int = 0) -> list[SimCall]:
        """Generates the next `count` calls of the seed, dates them, and makes them servable, as calls of
        `account` (0: the master account; else a sub-account's id)."""
        calls = []
        for _ in range(count):
            call = generate_call(self.config, self._next_index)
            calls.append(msgspec.structs.replace(call, date=self._date_for(call), account=account))
            self._next_index += 1
        self.add(calls)
        return calls

    def add(self, calls: Iterable[SimCall]) -> None:
        """Makes calls servable (e.g. calls generated elsewhere); their transcript clock starts now."""
        ready = self._monotonic() + self.config.transcript_delay_s
        for call in calls:
            if call.call_id not in self._calls:
                self._position[call.call_id] = len(self._order)
                self._order.append(call.call_id)
            self._calls[call.call_id] = call
            self._ready_at.setdefault(call.call_id, ready)
        self._listings.clear()
        self.version += 1
        self._changed_at = self._wall()

    def mark_sent(self, call_id: str) -> None:
        """The call's first webhook is going out: its transcript is ready `transcript_delay_s` from now."""
        if call_id in self._calls and call_id not in self._sent:
            self._sent.add(call_id)
            self._ready_at[call_id] = self._monotonic() + self.config.transcript_delay_s

    def finish_transcript(self, call_id: str) -> None:
        """Wavix finishes the call's transcript now, whatever its delay (for a transcript that comes late)."""
        if call_id in self._calls:
            self._sent.add(call_id)
            self._ready_at[call_id] = self._monotonic()

    def set_faults(self, faults: Faults, account: int | None = None) -> None:
        """The faults of every account, or of one (`account`) only."""
        if account is None:
            self.faults = faults
        else:
            self.account_faults[account] = faults

    def faults_for(self, account: int) -> Faults:
        return self.account_faults.get(account, self.faults)

    def get(self, call_id: str) -> SimCall | None:
        return self._calls.get(call_id)

    def calls(self) -> list[SimCall]:
        """Every call placed, in the order they were placed."""
        return list(self._calls.values())

    def neighbours(self, call: SimCall) -> list[SimCall]:
        """The calls placed just after and just before `call` (for the `wrong_cdr` fault's answer)."""
        position = self._position.get(call.call_id)
        if position is None:
            return []
        near = {self._order[(position + step) % len(self._order)] for step in (1, -1)} - {call.call_id}
        return [self._calls[call_id] for call_id in sorted(near)]

    def last_modified(self) -> str:
        """When calls were last added, as an HTTP date (the export's `Last-Modified`)."""
        return formatdate(self._changed_at, usegmt=True)

    def listing(self, direction: str, account: int = 0) -> list[SimCall]:
        """The calls of one direction and account sorted by (date, index), kept until the next call is placed."""
        key = f"{direction}:{account}"
        if key not in self._listings:
            mine = [c for c in self._calls.values() if c.direction == direction and c.account == account]
            self._listings[key] = sorted(mine, key=lambda c: (c.date, c.index))
        return self._listings[key]

    def transcript(self, call: SimCall) -> Transcript | None:
        """The call's transcript once it is ready; None while pending or if the call has none."""
        if call.transcript is None or self._monotonic() < self._ready_at.get(call.call_id, 0.0):
            return None
        return call.transcript

    def transcription_date(self, call: SimCall) -> str:
        """When the transcript was made: the call's end plus the configured delay."""
        ended = call.times()[2]
        return format_time(ended + timedelta(seconds=self.config.transcript_delay_s))

    def webhook_stats(self) -> dict[str, int]:
        """How many calls were placed and how many of them never get their work-starting webhooks."""
        return {"calls": len(self._calls), "dropped_calls": sum(c.webhooks_dropped for c in self._calls.values())}

    def _date_for(self, call: SimCall) -> str:
        if self.config.start is not None:
            return format_time(parse_time(self.config.start) + timedelta(seconds=call.index * self.config.spacing_s))
        now = datetime.fromtimestamp(self._wall(), UTC)
        lasts = call.ring_s + call.duration
        slack = max(0.0, self.config.window_s - lasts)
        ended_ago = random.Random(f"wavix-sandbox:{self.config.seed}:date:{call.index}").random() * slack
        return format_time(now - timedelta(seconds=ended_ago + lasts))
