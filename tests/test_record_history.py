"""History is immutable (issue #23): a replay adds steps of its own and never moves what already happened.

A call's first-seen time, its event's publish time and its latency (its `CallSummary`, contract/record.py)
are written once; an operator's replay, of a destination since a time or of a dead letter, is one `replay`
step in each call's timeline and is counted on its own on the overview, never as calls or latencies.
End to end: the routed pipeline (tests/pipeline.py), the real worker, the console app read through its pages.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from console import data, trace
from console.app import ConsoleOptions, create_app
from contract.record import CallSummary, calls_key
from tests.conftest import REDIS_URL, forget
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import Pipeline, routed
from workers.deliver import admin
from workers.operate import record

TOKEN = "console-token-" + "h" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def console(p: Pipeline) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    app = create_app(p.settings, ConsoleOptions(token=TOKEN), ("events", "crm"))
    async with AsyncTestClient(app=app) as client:
        yield client


@dataclass(frozen=True)
class Figures:
    """What the console shows of the calls: their summaries, the calls list, the charts' data and cards."""

    summaries: dict[str, CallSummary | None]
    calls_rows: list[str]
    per_minute: dict[int, Any]
    latencies_ms: list[int]
    latency_chart: str
    cards: dict[str, str]


def _svg(html: str, name: str) -> str:
    found = re.search(f'<svg [^>]*id="{name}".*?</svg>', html, re.S)
    assert found, f"the overview draws its {name} chart"
    return found.group(0)


def _cards(html: str) -> dict[str, str]:
    return {name: re.sub(r"<[^>]+>|\s+", " ", text).strip()
            for name, text in re.findall(r'<div class="card" id="card-([a-z0-9-]+)"[^>]*>(.*?)</div>', html, re.S)}


async def figures(p: Pipeline, client: AsyncTestClient, call_ids: list[str]) -> Figures:  # type: ignore[type-arg]
    prefix = p.settings.key_prefix
    summaries = {c: (await trace.read(p.redis, prefix, c)).summary for c in call_ids}
    listing = (await client.get("/calls", headers=AUTH)).text
    overview = (await client.get("/", headers=AUTH)).text
    view = await data.overview(p.redis, prefix, p.settings.dead_letter_stream, 60)
    return Figures(summaries=summaries, calls_rows=re.findall(r'<tr class="call.*?</tr>', listing, re.S),
                   per_minute=dict(view.per_minute), latencies_ms=sorted(view.latencies_ms),
                   latency_chart=_svg(overview, "latency"), cards=_cards(overview))


def history(f: Figures) -> Figures:
    """The figures a replay must leave alone (the replay cards are its own)."""
    cards = {k: v for k, v in f.cards.items() if not k.startswith("replayed") and k != "dead"}
    return Figures(f.summaries, f.calls_rows, f.per_minute, f.latencies_ms, f.latency_chart, cards)


async def test_a_destination_replay_leaves_the_calls_charts_and_latency_as_they_were(tmp_path: Path) -> None:
    """`replay --destination crm --since T` sends every event again, yet each call keeps its first-seen time,
    its publish time and its latency: the calls list, the per-minute and latency charts and the p50/p95 cards
    read the same after it. Each replayed call's timeline gains one `replay` step and delivery rows marked as
    the replay's; the overview counts the replayed deliveries on a card of their own."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver) as p, console(p) as client:
        since = int(time.time() * 1000) - 1000
        calls, _ = await p.place_and_send(4)
        await p.run_worker()
        ids = [c.call_id for c in calls]
        before = await figures(p, client, ids)
        assert all(s is not None for s in before.summaries.values()) and len(before.calls_rows) == len(calls)

        made = len(await p.events())
        said = await admin.replay(p.settings, p.redis, "crm", since_ms=since, until_ms=None, types=())
        assert said == f"crm: {made} events queued for replay"
        await p.run_worker()
        assert len(receiver.received) == 2 * made, "the replay did go out"

        after = await figures(p, client, ids)
        assert after.summaries == before.summaries, "a replay must not move a call's time or its latency"
        assert history(after) == history(before)
        assert after.cards["replayed"].startswith(f"{made} ")

        timeline = await trace.read(p.redis, p.settings.key_prefix, ids[0])
        (replay,) = [s for s in timeline.steps if s.step == "replay"]
        assert replay.fields["destination"] == "crm" and "crm" in replay.text
        replayed = [s for s in timeline.steps if s.step == "delivery" and s.at_ms > replay.at_ms]
        assert replayed and all(s.fields.get("source") == "replay" and "replay" in s.text for s in replayed)


async def test_a_dead_letter_replay_is_its_own_step_and_leaves_the_latency_alone(tmp_path: Path) -> None:
    """crm refuses (503) until its schedule gives up: a dead letter. Replayed once crm is back, the delivery
    goes out, the call's summary (first seen, published, latency) is the one `events` made at first, its
    timeline shows the dead-letter replay as a step, and the overview counts it apart from destination replays."""
    receiver = WebhookReceiver(status=503)
    async with routed(tmp_path, receiver, crm="    retry: {schedule: [50ms]}\n") as p, console(p) as client:
        calls, _ = await p.place_and_send(1)
        await p.run_worker()
        (letter,) = [i.decode() for i, _ in await p.redis.xrange(p.settings.dead_letter_stream)]
        before = await figures(p, client, [calls[0].call_id])

        receiver.status = 204
        assert (await p.replay(letter)).startswith("queued")
        await p.run_worker()
        assert len(receiver.received) == 1

        after = await figures(p, client, [calls[0].call_id])
        assert after.summaries == before.summaries, "a dead letter's replay must not move the call's latency"
        assert history(after) == history(before)
        assert after.cards["replayed-letters"].startswith("1 ")
        assert after.cards["replayed"].startswith("0 ")
        timeline = await trace.read(p.redis, p.settings.key_prefix, calls[0].call_id)
        (replay,) = [s for s in timeline.steps if s.step == "replay"]
        assert replay.fields["what"] == "dead_letter" and "dead letter" in replay.text


async def test_a_summary_is_written_once_and_a_recovered_call_is_not_a_webhook_latency() -> None:
    """The index keeps a call's first summary: a second publication (a later job, another destination) leaves its
    time, publish time and place in the list alone. A call found by reconciliation counts as recovered, not in
    the webhook-to-event latency: it had no webhook."""
    redis, prefix = Redis.from_url(REDIS_URL), f"test:history:{uuid.uuid4().hex}:"
    writer, now = record.Writer(redis, prefix, ttl_s=600), record.now_ms()
    first = CallSummary(call_id="c1", at_ms=now - 5000, outcome="busy", direction="inbound", published_at_ms=now - 4950)
    later = CallSummary(call_id="c1", at_ms=now, outcome="busy", direction="inbound", published_at_ms=now + 800)
    found = CallSummary(call_id="c2", at_ms=now - 3000, outcome="busy", direction="inbound", found_by="reconcile",
                        published_at_ms=now - 2990)
    try:
        for summary in (first, later, found):
            notes = record.Notes(summary.call_id, summary.at_ms)
            notes.summary = summary
            assert await writer.flush(notes)
        assert await data.calls(redis, prefix, 0) == [found, first]
        assert await redis.zscore(calls_key(prefix), "c1") == first.at_ms
        view = await data.overview(redis, prefix, f"{prefix}dead", 60)
        assert view.calls == 2 and view.recovered == 1 and view.latencies_ms == [50]
    finally:
        await redis.aclose()
        forget([prefix])
