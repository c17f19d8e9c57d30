"""Sending the webhooks Wavix sends for simulated calls: the plan, the POSTs, and what the target answered.

`deliveries(calls, ...)` plans what goes out: per call, optionally its on-call events (`call_setup`,
`ringing`, `answered`, then one terminal event: `completed`, `busy`, `cancelled` or `rejected`), then its
post-call webhook; then repeats a share (duplicates), drifts a share (`bodies.drifted`) and shuffles
neighbours (reordering), all seeded. A call marked `webhooks_dropped` loses every webhook that starts work
(post-call, the terminal on-call event, transcription completed): only its progress events go out, as
when Wavix loses a webhook. `send_webhooks(...)` POSTs them as `application/json` at a steady rate,
bounded in time, plus, when asked, each transcribed call's transcription-completed webhook once its
transcript is ready (`transcription_delay_s` after the call's first webhook, the sandbox's own clock),
and records what the target answered, so a demo can tell accepted from duplicate and the CLI can tell
refused (`refusals`). The bodies themselves, and the variants, are `sandbox.bodies`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Sequence

import httpx
import msgspec

from sandbox.bodies import (
    ALL_VARIANTS,
    TERMINAL,
    Variant,
    drifted,
    encode,
    on_call,
    on_call_body,
    on_call_events,
    post_call,
    post_call_body,
    transcription_body,
)
from sandbox.calls import SimCall

__all__ = ["ALL_VARIANTS", "TERMINAL", "Delivery", "Result", "Variant", "deliveries", "on_call_body",
           "on_call_events", "post_call_body", "refusals", "send_webhooks", "summarize"]


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One planned POST: which call and event, in which variant, and whether it repeats an earlier one."""

    call_id: str
    kind: str  # post_call | on_call | transcription
    event: str  # the disposition (post-call), event_type (on-call) or transcript status (transcription)
    variant: Variant
    duplicate: bool
    body: bytes
    drift: str | None = None  # the unneeded field changed (`bodies.drifted`), None if the body is as Wavix's


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one delivery: the target's status (None if no answer) and when it was sent."""

    call_id: str
    kind: str
    event: str
    variant: Variant
    duplicate: bool
    status: int | None
    error: str | None
    sent_at: float  # seconds after sending began
    elapsed_ms: float
    drift: str | None = None
    answer: str | None = None  # the start of the target's body when it did not answer 2xx


def deliveries(
    calls: Sequence[SimCall],
    *,
    variants: Sequence[Variant] = ALL_VARIANTS,
    duplicates: float = 0.0,
    reorder: bool = False,
    on_call_events_too: bool = False,
    seed: int = 0,
    drift: float = 0.0,
) -> list[Delivery]:
    """The planned POSTs, in sending order; a pure function of its arguments (seeded)."""
    if not variants:
        raise ValueError("at least one variant is needed")
    if not (0.0 <= duplicates <= 1.0 and 0.0 <= drift <= 1.0):
        raise ValueError("duplicates and drift must be within 0..1")
    rng = random.Random(f"wavix-sandbox:{seed}:webhooks")
    plan = [d for call in calls for d in _call_plan(call, variants, on_call_events_too, seed, drift)]
    # A duplicate goes out a little after its original (up to 20 places later), as a redelivery would.
    keyed = [(float(i), d) for i, d in enumerate(plan)]
    keyed += [(i + 1 + rng.randrange(0, 20) + 0.5, msgspec.structs.replace(d, duplicate=True))
              for i, d in enumerate(plan) if rng.random() < duplicates]
    keyed.sort(key=lambda pair: pair[0])
    plan = [d for _, d in keyed]
    if reorder:
        _shuffle_nearby(plan, rng, window=8)
    return plan


def _call_plan(
    call: SimCall, variants: Sequence[Variant], on_call_too: bool, seed: int, drift: float
) -> list[Delivery]:
    """One call's webhooks in order; without the work-starting ones when the call's webhooks are dropped."""
    variant = variants[random.Random(f"wavix-sandbox:{seed}:variant:{call.index}").randrange(len(variants))]
    drifts = random.Random(f"wavix-sandbox:{seed}:drift:{call.index}")
    events = on_call_events(call) if on_call_too else []
    bodies = [("on_call", event, on_call(call, event, variant)) for event in events]
    bodies.append(("post_call", call.disposition, post_call(call, variant)))
    plan = []
    for kind, event, body in bodies:
        if call.webhooks_dropped and (kind == "post_call" or event in TERMINAL.values()):
            continue
        change = None
        if drifts.random() < drift:
            body, change = drifted(body, call, drifts)
        plan.append(Delivery(call_id=call.call_id, kind=kind, event=event, variant=variant, duplicate=False,
                             body=encode(body), drift=change))
    return plan


def transcription_deliveries(calls: Iterable[SimCall]) -> list[Delivery]:
    """The transcription-completed webhook of every transcribed call whose webhooks are not dropped."""
    return [Delivery(call_id=c.call_id, kind="transcription", event=c.transcript.status, variant=Variant.SPEC,
                     duplicate=False, body=transcription_body(c))
            for c in calls if c.transcript is not None and not c.webhooks_dropped]


def _shuffle_nearby(plan: list[Delivery], rng: random.Random, window: int) -> None:
    """Swaps each delivery with one up to `window` places later: late, early, never far."""
    for i in range(len(plan) - 1):
        j = min(len(plan) - 1, i + rng.randrange(0, window + 1))
        plan[i], plan[j] = plan[j], plan[i]


async def send_webhooks(
    calls: Sequence[SimCall],
    target_url: str,
    *,
    rate: float = 50.0,
    variants: Sequence[Variant] = ALL_VARIANTS,
    duplicates: float = 0.0,
    reorder: bool = False,
    on_call_events: bool = False,
    client: httpx.AsyncClient | None = None,
    seed: int = 0,
    deadline_s: float = 300.0,
    max_in_flight: int = 64,
    on_first_send: Callable[[str], None] | None = None,
    drift: float = 0.0,
    transcription_delay_s: float | None = None,
) -> list[Result]:
    """POSTs the webhooks of `calls` to `target_url`, `rate` per second; returns one Result each, in order.

    Stops starting new POSTs after `deadline_s` (those are reported with error "deadline"). Pass
    `on_first_send=sandbox.mark_sent` so a call's transcript clock starts with its first webhook, and
    `transcription_delay_s=sandbox.config.transcript_delay_s` to send transcription-completed webhooks
    when each transcript is ready (None: none are sent); they come after the others in the results.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    plan = deliveries(calls, variants=variants, duplicates=duplicates, reorder=reorder,
                      on_call_events_too=on_call_events, seed=seed, drift=drift)
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=10.0)
    sender = _Sender(http, target_url, max_in_flight, deadline_s)
    try:
        tasks = []
        for i, delivery in enumerate(plan):
            wait = sender.began + i / rate - time.monotonic()
            if sender.late():
                tasks.append(asyncio.create_task(sender.skipped(delivery)))
                continue
            if wait > 0:
                await asyncio.sleep(wait)
            if delivery.call_id not in sender.first_sent:
                sender.first_sent[delivery.call_id] = time.monotonic()
                if on_first_send is not None:
                    on_first_send(delivery.call_id)
            await sender.limit.acquire()
            tasks.append(asyncio.create_task(sender.post(delivery)))
        if transcription_delay_s is not None:
            tasks += [asyncio.create_task(sender.later(d, transcription_delay_s))
                      for d in transcription_deliveries(calls)]
        return list(await asyncio.gather(*tasks))
    finally:
        if own_client:
            await http.aclose()


class _Sender:
    """The POSTs of one `send_webhooks` run: its client, its bound on POSTs in flight, its clock."""

    def __init__(self, http: httpx.AsyncClient, url: str, max_in_flight: int, deadline_s: float) -> None:
        self.http, self.url, self.deadline_s = http, url, deadline_s
        self.limit = asyncio.Semaphore(max_in_flight)
        self.began = time.monotonic()
        self.first_sent: dict[str, float] = {}  # call id -> when its first webhook went out (monotonic)

    def late(self, at: float | None = None) -> bool:
        return (at if at is not None else time.monotonic()) - self.began > self.deadline_s

    def result(self, delivery: Delivery, status: int | None, error: str | None, sent_at: float,
               elapsed: float, answer: str | None = None) -> Result:
        return Result(call_id=delivery.call_id, kind=delivery.kind, event=delivery.event, variant=delivery.variant,
                      duplicate=delivery.duplicate, status=status, error=error, sent_at=sent_at,
                      elapsed_ms=round(elapsed * 1000, 3), drift=delivery.drift, answer=answer)

    async def skipped(self, delivery: Delivery) -> Result:
        return self.result(delivery, None, "deadline", time.monotonic() - self.began, 0.0)

    async def later(self, delivery: Delivery, delay_s: float) -> Result:
        """Posts `delivery` `delay_s` after its call's first webhook (at once if none went out)."""
        due = self.first_sent.get(delivery.call_id, time.monotonic()) + delay_s
        if self.late(due):
            return await self.skipped(delivery)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await self.limit.acquire()
        return await self.post(delivery)

    async def post(self, delivery: Delivery) -> Result:
        """One POST (the caller holds a place in `limit`; it is given back here)."""
        start = time.monotonic()
        try:
            response = await self.http.post(self.url, content=delivery.body,
                                            headers={"content-type": "application/json"})
            answer = None if 200 <= response.status_code < 300 else (await response.aread())[:200].decode(
                "utf-8", "replace")
            return self.result(delivery, response.status_code, None, start - self.began, time.monotonic() - start,
                               answer)
        except httpx.HTTPError as e:
            return self.result(delivery, None, f"{type(e).__name__}: {e}", start - self.began,
                               time.monotonic() - start)
        finally:
            self.limit.release()


def summarize(results: Iterable[Result]) -> dict[str, int]:
    """Counts by answer: `"200"`, `"409"`, `"error"`..., for a demo's report."""
    counts: dict[str, int] = {}
    for result in results:
        key = str(result.status) if result.status is not None else "error"
        counts[key] = counts.get(key, 0) + 1
    return counts


def refusals(results: Iterable[Result]) -> tuple[int, Result | None]:
    """Webhooks the target refused, and the first refusal: a webhook (an original with its repeats) is
    refused when it got answers but no 2xx. Drifted bodies are faults on purpose and do not count."""
    answers: dict[tuple[str, str, str], list[Result]] = {}
    for result in results:
        if result.drift is None and result.status is not None:
            answers.setdefault((result.call_id, result.kind, result.event), []).append(result)
    refused = [rs for rs in answers.values() if not any(200 <= r.status < 300 for r in rs if r.status)]
    first = min((r for rs in refused for r in rs), key=lambda r: r.sent_at, default=None)
    return len(refused), first
