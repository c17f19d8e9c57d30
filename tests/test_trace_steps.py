"""A true trace (issue #23): try numbers are the destination's own, a failed try says how long it took and when
the next comes, and an expected wait (a transcript not ready yet) reads as a wait, not as a failure.

End to end: the real worker against the sandbox (tests/pipeline.py), the timeline read as `wavix-events trace`
and the console's call page read it (console/trace.py).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar.testing import AsyncTestClient

from console import trace
from console.app import ConsoleOptions, create_app
from contract.record import Entry
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from tests.conftest import REDIS_URL
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import Pipeline, pipeline

ALL_TRANSCRIBED = {"transcript_share": 1.0, "transcript_failed_share": 0.0, "machine_share": 0.0}
TOKEN = "console-token-" + "t" * 20


@asynccontextmanager
async def to_crm(tmp_path: Path, receiver: WebhookReceiver, crm: str, config: SandboxConfig,
                 **env: str) -> AsyncIterator[Pipeline]:
    """A pipeline routing every event to a Redis stream `events` and to `receiver` as `crm` (`crm`: its YAML)."""
    await receiver.start()
    stream = f"test:events:{uuid.uuid4().hex}"
    routing = tmp_path / "sinks.yaml"
    routing.write_text("destinations:\n"
                       f"  - name: events\n    url: {REDIS_URL}?stream={stream}\n"
                       f"  - name: crm\n    url: http://127.0.0.1:{receiver.port}/hooks\n"
                       f"    secret: {receiver.secret}\n{crm}")
    try:
        async with pipeline(config, SINKS_CONFIG=str(routing), EVENTS_STREAM=stream, **env) as p:
            yield p
    finally:
        await receiver.stop()


def tries(timeline: trace.Timeline, destination: str) -> dict[str, list[int]]:
    """The try numbers of each event's delivery rows to `destination`, by event type."""
    found: dict[str, list[int]] = {}
    for s in timeline.steps:
        if s.step == "delivery" and s.fields["destination"] == destination:
            found.setdefault(s.fields["event_type"], []).append(s.fields["attempt"])
    return found


async def test_delivery_tries_are_counted_per_destination_and_match_the_dead_letter(tmp_path: Path) -> None:
    """crm answers 503 to each of its 4 tries (schedule: three waits); Wavix fails some fetches, so some calls'
    jobs run more than once. Each event's crm rows read try 1, 2, 3, 4 and its dead letter "after 4 tries";
    `events`, delivered at once, shows try 1, whichever try of the job delivered it."""
    receiver = WebhookReceiver(status=503)
    config = SandboxConfig(seed=4, transcript_share=0.0, faults=Faults(server_error=0.5))
    async with to_crm(tmp_path, receiver, "    retry: {schedule: [50ms, 50ms, 50ms]}\n", config,
                      RETRY_MAX_DELAY="0.2", TRANSCRIPT_WAIT="1") as p:
        calls, _ = await p.place_and_send(4)
        await p.run_worker()
        rerun = 0
        for call in calls:
            timeline = await trace.read(p.redis, p.settings.key_prefix, call.call_id)
            rerun += any(s.step == "job" and s.fields["job"] != "deliver" and s.fields["attempt"] > 1
                         and s.fields["outcome"] != "retry" for s in timeline.steps)
            events, crm = tries(timeline, "events"), tries(timeline, "crm")
            assert events and all(n == [1] for n in events.values()), (call.call_id, events)
            assert crm.keys() == events.keys() and all(n == [1, 2, 3, 4] for n in crm.values()), (call.call_id, crm)
            dead = [s for s in timeline.steps if s.step == "dead_letter"]
            assert len(dead) == len(crm) and all(s.fields["attempt"] == 4 and "after 4 tries" in s.text for s in dead)
            last = [s for s in timeline.steps if s.step == "delivery" and s.fields["destination"] == "crm"][-1]
            assert "try 4" in last.text and not last.ok
        assert rerun, "the seed should make some job run more than once before it delivered"


async def test_a_failed_try_says_how_long_it_took_and_when_the_next_comes() -> None:
    """A CDR fetch answered 503 ends its try as "process_call try 1 failed after N ms: <reason>; next try in
    T": N is the try's own duration, T the delay arq was given, and the next try indeed starts T later."""
    config = SandboxConfig(seed=4, transcript_share=0.0, faults=Faults(server_error=0.5))
    async with pipeline(config, RETRY_MAX_DELAY="0.5") as p:
        calls, _ = await p.place_and_send(6)
        await p.run_worker()
        checked = 0
        for call in calls:
            jobs = [s for s in (await trace.read(p.redis, p.settings.key_prefix, call.call_id)).steps
                    if s.step == "job" and s.fields["job"] == "process_call"]
            for failed, following in itertools.pairwise(jobs):
                said = re.fullmatch(r"process_call try (\d+) failed after (\d+) ms: (.+); next try in (.+)",
                                    failed.text)
                assert said, failed.text
                assert int(said.group(1)) == failed.fields["attempt"] and re.search(r"-> 5\d\d", said.group(3))
                assert int(said.group(2)) == round(failed.fields["ms"])
                next_ms = failed.fields["next_ms"]
                assert said.group(4) == trace.duration(next_ms) and next_ms >= 100
                started = following.at_ms - following.fields["ms"]
                assert started >= failed.at_ms + next_ms - 5, "the next try came sooner than it said"
                assert not failed.ok and not failed.wait
                checked += 1
        assert checked, "the seed should fail some CDR fetches"


async def test_a_transcript_not_ready_yet_is_a_wait_not_a_failure() -> None:
    """The first transcript poll finds it not ready (404): the fetch and the poll's try are waits: not marked
    as failed in `trace` ("~", not "!") nor painted bad on the call page, and the try says when it asks again."""
    config = SandboxConfig(seed=6, transcript_delay_s=1.8, **ALL_TRANSCRIBED)
    async with pipeline(config, TRANSCRIPT_POLL="1", TRANSCRIPT_WAIT="8") as p:
        calls, _ = await p.place_and_send(3)
        await p.run_worker()
        answered = [c for c in calls if c.answered and c.transcript is not None]
        assert answered, "the seed should give transcribed calls"
        app = create_app(p.settings, ConsoleOptions(token=TOKEN))
        async with AsyncTestClient(app=app) as console:
            for call in answered:
                timeline = await trace.read(p.redis, p.settings.key_prefix, call.call_id)
                polls = [s for s in timeline.steps if s.step == "job" and s.fields["job"] == "fetch_transcript"]
                waited = [s for s in polls if s.fields["outcome"] == "retry"]
                assert waited and polls[-1].fields["outcome"] == "published", [s.text for s in polls]
                assert all(s.ok for s in waited), "a transcript not ready yet is not a failed try"
                assert all(s.wait and "not ready" in s.text and "next try in" in s.text for s in waited)
                not_found = [s for s in timeline.steps if s.step == "fetch" and s.fields["status"] == "404"]
                assert not_found and all(s.ok and s.wait and "not ready" in s.text for s in not_found)
                text = trace.render_text(timeline)
                assert not [line for line in text.splitlines() if " ! " in line], text
                assert [line for line in text.splitlines() if " ~ " in line and "not ready" in line]
                page = (await console.get(f"/calls/{call.call_id}", headers={"Authorization": f"Bearer {TOKEN}"}))
                assert 'class="step bad"' not in page.text and 'class="step wait"' in page.text


def test_the_sentences_say_what_a_try_took_and_when_the_next_comes() -> None:
    """The issue's own example: a try of 8.38 ms followed by a 30 s wait reads "try 1 failed after 8 ms; next
    try in 30 s"; a wait reads as waiting; a replayed delivery says it is one."""
    failed = trace.entry_step(Entry(at_ms=1, step="job", job="fetch_transcript", attempt=1, outcome="retry",
                                    ok=False, ms=8.38, next_ms=30_000, reason="GET /cdr -> 503: busy"))
    assert failed.text == "fetch_transcript try 1 failed after 8 ms: GET /cdr -> 503: busy; next try in 30 s"
    waiting = trace.entry_step(Entry(at_ms=1, step="job", job="fetch_transcript", attempt=2, outcome="retry",
                                     wait=True, ms=4.2, next_ms=95_000, reason="transcript not ready yet"))
    assert waiting.ok and waiting.wait
    assert waiting.text == "fetch_transcript try 2: transcript not ready yet; next try in 1 min 35 s (took 4 ms)"
    replayed = trace.entry_step(Entry(at_ms=1, step="delivery", destination="crm", event_type="wavix.call.completed",
                                      attempt=1, outcome="published", ms=1500.0, source="replay"))
    assert replayed.text == "wavix.call.completed -> crm try 1 (replay): published in 1.5 s"
