"""Reconciliation end to end: the real receiver, the real arq worker, real Redis and the Wavix sandbox.

Each test places calls in the sandbox, lets some webhooks go missing (the sandbox drops them, or the receiver
answers 503 because its Redis is away), runs a pass with a controlled clock, runs the worker in burst mode,
and reads the events stream: every call exactly once, with its direction and how it was found.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from contract.events import COMPLETED
from sandbox.calls import SimCall, parse_time
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.webhooks import send_webhooks
from service.app import create_app
from tests.conftest import TOKEN
from tests.pipeline import Pipeline, by_type, pipeline
from workers.fetch.listed import ListedIntake, with_retries
from workers.fetch.reconcile import PassReport, reconcile_pass, run_once, take_turn
from workers.fetch.wavix import WavixClient, create_http_client
from workers.operate.metrics import WorkerMetrics
from workers.retry import Backoff, RetryPolicy, Transient

FAST = RetryPolicy(transient=Backoff(base=0.01, cap=0.02, max_attempts=20, floor=0.0), retry_after_cap=0.05,
                   retry_after_jitter=0.0)


@asynccontextmanager
async def reconciling(config: SandboxConfig, **env: str) -> AsyncIterator[tuple[Pipeline, WavixClient]]:
    """A pipeline and a Wavix client on its sandbox; every key of the run is deleted afterwards."""
    async with pipeline(config, **env) as p:
        http = create_http_client(p.settings, concurrency=4)
        try:
            yield p, WavixClient.from_settings(http, p.settings)
        finally:
            await http.aclose()
            await forget(p)


async def forget(p: Pipeline) -> None:
    """Deletes the run's keys: ours under the prefix, and arq's job and result records of its jobs."""
    prefix = p.settings.key_prefix
    for pattern in (f"{prefix}*", f"arq:*{prefix}*"):
        keys = [k async for k in p.redis.scan_iter(match=pattern, count=1000)]
        if keys:
            await p.redis.delete(*keys)


async def one_pass(p: Pipeline, wavix: WavixClient, now: float | None = None, **options: Any) -> PassReport:
    return await reconcile_pass(wavix, ListedIntake.from_settings(p.redis, p.settings),
                                now=time.time() if now is None else now, lookback=p.settings.reconcile_lookback,
                                policy=FAST, settle_s=0.0, **options)


async def completed(p: Pipeline) -> dict[str, list[Any]]:
    return by_type(await p.events(), COMPLETED)


def assert_once_each(calls: list[SimCall], events: dict[str, list[Any]], found_by: dict[str, str]) -> None:
    """Every call: exactly one completed event, the sandbox's direction, and `found_by` as expected."""
    assert set(events) == {c.call_id for c in calls}
    for call in calls:
        (event,) = events[call.call_id]
        assert event.data.direction == call.direction, call.call_id
        assert event.data.found_by == found_by[call.call_id], call.call_id


@pytest.mark.parametrize("cdr_path", ["/v1/cdrs/{call_id}", "/v1/cdr/{uuid}"])
async def test_one_pass_recovers_dropped_and_refused_webhooks(cdr_path: str) -> None:
    """20% of webhooks never sent and a third of the rest answered 503 (the receiver's Redis away): after one
    pass every call has exactly one completed event with the sandbox's direction; the lost ones say
    `found_by: reconcile`, the others `webhook`; both CDR path families list."""
    async with reconciling(SandboxConfig(seed=41, drop_webhooks_share=0.2), WAVIX_CDR_PATH=cdr_path) as (p, wavix):
        calls = p.sandbox.place(60)
        refused = {c.call_id for c in calls[:20]}
        away = msgspec.structs.replace(p.settings, redis_url="redis://127.0.0.1:1/0")  # nothing listens there
        async with AsyncTestClient(app=create_app(away)) as down:
            answers = await send_webhooks(calls[:20], f"/webhooks/wavix/{TOKEN}", client=down, rate=500.0,
                                          on_first_send=p.sandbox.mark_sent)
        assert {r.status for r in answers} == {503}
        await send_webhooks(calls[20:], f"/webhooks/wavix/{TOKEN}", client=p.receiver, rate=500.0,
                            on_first_send=p.sandbox.mark_sent)
        lost = {c.call_id for c in calls if c.webhooks_dropped} | refused
        assert sum(c.webhooks_dropped for c in calls) >= 6
        report = await one_pass(p, wavix)
        assert (report.listed, report.queued, report.skipped) == (60, len(lost), 0)
        await p.run_worker()
        found_by = {c.call_id: "reconcile" if c.call_id in lost else "webhook" for c in calls}
        assert_once_each(calls, await completed(p), found_by)


async def test_two_reconcilers_at_once_queue_each_call_once() -> None:
    """Two passes running at the same moment (two workers, no lock) queue each missed call once between them:
    the intake script is atomic, so nothing is published twice."""
    async with reconciling(SandboxConfig(seed=42, drop_webhooks_share=0.3)) as (p, wavix):
        calls, _ = await p.place_and_send(40)
        lost = {c.call_id for c in calls if c.webhooks_dropped}
        first, second = await asyncio.gather(one_pass(p, wavix), one_pass(p, wavix))
        assert first.queued + second.queued == len(lost) > 0
        await p.run_worker()
        assert_once_each(calls, await completed(p), {c.call_id: "reconcile" if c.call_id in lost else "webhook"
                                                     for c in calls})


async def test_lock_gives_one_turn_per_interval() -> None:
    """`take_turn` lets one process of many run the pass of an interval: the second asker is refused while the
    lock lives, and the lock expires with the interval."""
    async with reconciling(SandboxConfig(seed=43)) as (p, _):
        prefix = p.settings.key_prefix
        turns = await asyncio.gather(*(take_turn(p.redis, prefix, 300) for _ in range(5)))
        assert sorted(turns) == [False, False, False, False, True]
        assert 0 < await p.redis.ttl(f"{prefix}reconcile:lock") <= 300


async def test_webhook_after_reconciliation_publishes_nothing_more() -> None:
    """A call reconciled before its webhook came: the late webhook is acknowledged as a duplicate and the call
    keeps its one completed event, found by reconciliation."""
    async with reconciling(SandboxConfig(seed=44)) as (p, wavix):
        calls = p.sandbox.place(15)
        report = await one_pass(p, wavix)
        assert report.queued == 15
        await p.run_worker()
        late = await send_webhooks(calls, f"/webhooks/wavix/{TOKEN}", client=p.receiver, rate=500.0,
                                   on_first_send=p.sandbox.mark_sent)
        assert {r.status for r in late} == {200}
        await p.run_worker()
        assert_once_each(calls, await completed(p), {c.call_id: "reconcile" for c in calls})
        assert (await one_pass(p, wavix)).queued == 0


async def test_wavix_down_means_retries_and_a_failure_metric_never_a_crash() -> None:
    """With every API answer a 5xx, a pass retries its request (the policy's bounded tries), then fails: the
    failures counter moves, the success gauge does not, nothing is raised. Wavix back, the next pass succeeds."""
    async with reconciling(SandboxConfig(seed=45, drop_webhooks_share=0.5)) as (p, wavix):
        calls, _ = await p.place_and_send(10)
        p.sandbox.set_faults(Faults(server_error=1.0))
        metrics = WorkerMetrics()
        assert await run_once(p.redis, wavix, p.settings, metrics, policy=FAST, settle_s=0.0) is None
        assert metrics.reconcile_failures._value.get() == 1
        assert metrics.reconcile_last_success._value.get() == 0
        assert p.sandbox.requests["fault 5xx"] >= 2  # retried before giving up
        p.sandbox.set_faults(Faults())
        report = await run_once(p.redis, wavix, p.settings, metrics, policy=FAST, settle_s=0.0)
        assert report is not None and report.queued == sum(c.webhooks_dropped for c in calls)
        assert metrics.reconciled._value.get() == report.queued
        assert metrics.reconcile_last_success._value.get() > 0


async def test_retry_after_is_honoured() -> None:
    """A 429 with Retry-After: 2 makes the listing wait at least 2 s (the policy's delay) before its next try."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    answers = iter([Transient("GET /v1/cdrs -> 429", retry_after=2.0, status=429)])

    async def request() -> str:
        error = next(answers, None)
        if error is not None:
            raise error
        return "page"

    assert await with_retries(request, RetryPolicy(), tries=5, what="list", sleep=sleep) == "page"
    assert len(slept) == 1 and slept[0] >= 2.0


async def test_lookback_across_midnight_lists_both_days() -> None:
    """At 01:30 UTC with a 2-hour lookback the pass lists yesterday and today: the calls dated from 23:30 on
    are queued whichever day they fall on, the earlier ones are outside the window."""
    config = SandboxConfig(seed=46, start="2026-03-01T23:00:00Z", spacing_s=120.0)
    async with reconciling(config) as (p, wavix):
        calls = p.sandbox.place(45)  # 23:00 .. 00:28
        now = datetime(2026, 3, 2, 1, 30, tzinfo=UTC).timestamp()
        report = await one_pass(p, wavix, now=now)
        inside = [c for c in calls if parse_time(c.date).timestamp() >= now - 7200]
        assert report.days == ("2026-03-01", "2026-03-02")
        assert {c.date[:10] for c in inside} == {"2026-03-01", "2026-03-02"}
        assert report.listed == 45 and report.queued == len(inside) < 45
        await p.run_worker()
        assert_once_each(inside, await completed(p), {c.call_id: "reconcile" for c in inside})


async def test_a_listing_that_pages_lists_every_page() -> None:
    """With 7 calls a page, a pass pages to the end of both types: every call is listed and queued once."""
    async with reconciling(SandboxConfig(seed=47)) as (p, wavix):
        calls = p.sandbox.place(30)
        report = await one_pass(p, wavix, per_page=7)
        placed = sum(c.type == "placed" for c in calls)
        assert report.requests == -(-placed // 7) + -(-(30 - placed) // 7)
        assert (report.listed, report.queued) == (30, 30)


async def test_bad_ids_are_skipped_with_a_warning() -> None:
    """A listed item whose id breaks the id rules (a space, a path) is skipped, the others queued."""
    items = [{"uuid": "ok-1", "date": "2026-03-01T10:00:00.000Z", "disposition": "ANSWERED"},
             {"uuid": "../etc", "date": "2026-03-01T10:00:00.000Z"}, {"uuid": "a b"}, {"call_id": "x" * 129}]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": items, "pagination": {"total_pages": 1}})

    async with reconciling(SandboxConfig(seed=48)) as (p, _):
        http = create_http_client(p.settings, 1, transport=httpx.MockTransport(answer))
        wavix = WavixClient.from_settings(http, p.settings)
        now = datetime(2026, 3, 1, 11, tzinfo=UTC).timestamp()
        report = await one_pass(p, wavix, now=now)
        await http.aclose()
        assert (report.listed, report.skipped, report.queued) == (8, 6, 1)  # both types list the same items
