"""The outside world, simulated in the demo's own process: Wavix (the sandbox) and Slack (the stand-in).

The sandbox serves Wavix's API to the worker and sends the calls' webhooks to the receiver; the Slack
stand-in takes the worker's alerts. Both live here rather than in processes of their own so the demo can
count what happens as it happens: every receiver answer (accepted, duplicate, ignored) through an httpx
event hook, every Slack message as it arrives, every fault the sandbox injects.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import msgspec

from sandbox.calls import SimCall
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.state import Sandbox
from sandbox.webhooks import ALL_VARIANTS, Result, deliveries, send_webhooks

DUPLICATES = 0.10  # share of webhooks Wavix delivers twice
DROPPED = 0.10  # share of calls whose webhooks Wavix never delivers: reconciliation recovers them
DRIFT = 0.10  # share of webhook bodies whose unneeded fields drift in type (a number for a string, ...)
FAULTS = Faults(rate_limit=0.02, server_error=0.03, retry_after_s=1)  # a few % of API requests spoiled
SEED = 2026


def sandbox_config(transcript_delay_s: float, api_key: str, drop_webhooks: float = DROPPED) -> SandboxConfig:
    """Realistic calls: about 60% answered, some by machines; transcripts arrive late; a few API faults; the
    webhooks of `drop_webhooks` of the calls never sent."""
    return SandboxConfig(seed=SEED, api_key=api_key, transcript_delay_s=transcript_delay_s, faults=FAULTS,
                         drop_webhooks_share=drop_webhooks)


@dataclass
class WebhookTally:
    """What the receiver answered so far, and when each call's accepted webhook was sent (wall clock)."""

    planned: int = 0
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # accepted, duplicate, ignored, HTTP status
    accepted_at: dict[str, float] = field(default_factory=dict)  # call id -> send time of its accepted webhook
    _sent_at: dict[int, float] = field(default_factory=dict)
    finished: bool = False

    async def on_request(self, request: httpx.Request) -> None:
        self.sent += 1
        self._sent_at[id(request)] = time.time()

    async def on_response(self, response: httpx.Response) -> None:
        sent_at = self._sent_at.pop(id(response.request), time.time())
        if response.status_code != 200:
            self.answers[f"HTTP {response.status_code}"] += 1
            return
        await response.aread()
        answer = msgspec.json.decode(response.content)
        self.answers[answer["status"]] += 1
        if answer["status"] == "accepted":
            self.accepted_at[answer["call_id"]] = sent_at

    def record_errors(self, results: list[Result]) -> None:
        """Webhooks that got no answer at all (connection refused, timeout) never reach `on_response`."""
        self.answers["no answer"] += sum(1 for r in results if r.status is None)


def planned_webhooks(calls: list[SimCall], seed: int = SEED) -> int:
    """How many POSTs `send` will make (on-call events, post-call webhooks and repeats)."""
    return len(deliveries(calls, variants=ALL_VARIANTS, duplicates=DUPLICATES, on_call_events_too=True, seed=seed,
                          drift=DRIFT))


async def send(sandbox: Sandbox, calls: list[SimCall], target: str, rate: float, tally: WebhookTally) -> None:
    """POSTs every webhook of `calls` at `rate` per second, in every payload variant Wavix has used, `DRIFT`
    of them with drifted field types, and each transcript's transcription-completed webhook when it is ready."""
    tally.planned = planned_webhooks(calls, sandbox.config.seed)
    hooks = {"request": [tally.on_request], "response": [tally.on_response]}
    async with httpx.AsyncClient(timeout=10.0, event_hooks=hooks) as http:  # type: ignore[arg-type]
        results = await send_webhooks(
            calls, target, rate=rate, variants=ALL_VARIANTS, duplicates=DUPLICATES, reorder=True,
            on_call_events=True, client=http, seed=sandbox.config.seed, deadline_s=600.0,
            on_first_send=sandbox.mark_sent, drift=DRIFT, transcription_delay_s=sandbox.config.transcript_delay_s,
        )
    tally.record_errors(results)
    tally.finished = True


def api_faults(sandbox: Sandbox) -> tuple[int, int]:
    """(API requests answered, faults injected) so far."""
    faults = sum(n for key, n in sandbox.requests.items() if key.startswith("fault"))
    return sum(sandbox.requests.values()) - faults, faults
