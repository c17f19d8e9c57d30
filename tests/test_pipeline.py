"""End to end: sandbox webhooks -> real receiver -> Redis -> real arq worker -> Wavix sandbox -> events, alerts."""

from __future__ import annotations

import re
from decimal import Decimal

from prometheus_client import generate_latest

from contract.events import COMPLETED, TRANSCRIBED, UNAVAILABLE
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.webhooks import ALL_VARIANTS
from tests.pipeline import by_type, pipeline


async def test_every_call_yields_exactly_one_completed_event_with_its_values():
    """Each placed call, sent in every payload variant with repeats and reordering, gives one correct event."""
    async with pipeline(SandboxConfig(seed=11, transcript_share=0.0)) as p:
        calls, results = await p.place_and_send(
            24, variants=ALL_VARIANTS, duplicates=0.5, reorder=True, on_call_events=True
        )
        assert all(r.status == 200 for r in results), {r.status for r in results}
        assert any(r.duplicate for r in results)
        worker = await p.run_worker()
        completed = by_type(await p.events(), COMPLETED)
        assert sorted(completed) == sorted(c.call_id for c in calls)
        assert all(len(events) == 1 for events in completed.values())
        for call in calls:
            data = completed[call.call_id][0].data
            assert data.disposition == call.disposition.lower()
            assert Decimal(data.charge) == Decimal(call.charge)
            assert Decimal(data.duration_s) == Decimal(call.duration)
            assert data.direction == call.direction
            assert data.from_.number is not None and data.from_.number.startswith("+")
        assert worker.jobs_failed == 0
        metrics = generate_latest(worker.ctx["resources"].metrics.registry).decode()
        assert f'wavix_events_published_total{{sink="redis",type="wavix.call.completed"}} {len(calls)}.0' in metrics
        assert f'wavix_jobs_total{{function="process_call",outcome="published"}} {len(calls)}.0' in metrics
        cdr_fetches = re.search(r'wavix_api_requests_total\{endpoint="cdr",status="200"\} (\S+)', metrics)
        assert cdr_fetches is not None and float(cdr_fetches.group(1)) >= len(calls)  # transcript polls fetch too


async def test_late_transcripts_arrive_as_transcribed_or_unavailable():
    """Transcripts that are ready only after a delay are polled for and published; others end unavailable."""
    config = SandboxConfig(seed=5, transcript_share=1.0, transcript_delay_s=1.5, transcript_failed_share=0.3,
                           machine_share=0.0)
    async with pipeline(config) as p:
        calls, _ = await p.place_and_send(16)
        await p.run_worker()
        events = await p.events()
        answered = [c for c in calls if c.disposition == "answered"]
        transcribed, unavailable = by_type(events, TRANSCRIBED), by_type(events, UNAVAILABLE)
        assert answered, "the seed should give answered calls"
        for call in answered:
            outcomes = transcribed.get(call.call_id, []) + unavailable.get(call.call_id, [])
            assert len(outcomes) == 1, call.call_id
        assert transcribed, "some transcripts should have completed"
        assert all(e[0].data.turns for e in transcribed.values())
        reasons = {e[0].data.reason for e in unavailable.values()}
        assert reasons <= {"failed", "timed_out"}
        assert not set(transcribed) - {c.call_id for c in answered}


def alerted_calls(p) -> list[str]:
    """Call ids named in the alerts Slack accepted, once per message (a single alert or a digest)."""
    import re

    found: list[str] = []
    for received in p.slack.accepted():
        text = str(received.message)
        found += set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text))
    return found


async def test_failed_and_machine_calls_alert_exactly_once_even_when_repeated_and_retried():
    """Each failed or machine-answered call gives one Slack alert, despite repeats, retries and 429s."""
    config = SandboxConfig(seed=3, transcript_share=0.0, machine_share=0.6,
                           faults=Faults(server_error=0.15, rate_limit=0.1))
    async with pipeline(config, ALERT_DIGEST_THRESHOLD="100") as p:
        calls, _ = await p.place_and_send(20, duplicates=1.0, on_call_events=True)
        await p.run_worker()
        await p.flush_alerts()
        expected = {c.call_id for c in calls if c.disposition == "failed" or c.answered_by == "machine"}
        assert expected, "the seed should give failed and machine calls"
        named = alerted_calls(p)
        assert sorted(set(named)) == sorted(expected)
        assert len(named) == len(set(named)), "a call was alerted twice"
        assert await p.dead_letters() == []

        # A job that runs again (a crash after publishing, before arq recorded it) changes nothing.
        events_before, messages_before = len(await p.events()), len(p.slack.accepted())
        for call in calls:
            await p.rerun_call(call.call_id)
        worker = await p.run_worker()
        await p.flush_alerts()
        assert worker.jobs_complete == len(calls)
        assert len(await p.events()) == events_before
        assert len(p.slack.accepted()) == messages_before


async def test_every_fault_class_of_the_api_is_survived_with_nothing_lost():
    """429s with and without Retry-After, 5xx, dropped connections and slow answers: every call still publishes."""
    faults = Faults(rate_limit=0.08, rate_limit_bare=0.08, server_error=0.12, drop=0.08, slow=0.05, slow_s=3.0)
    async with pipeline(SandboxConfig(seed=21, transcript_share=0.0, faults=faults), WAVIX_TIMEOUT="1",
                        RETRY_MAX_DELAY="2") as p:
        calls, _ = await p.place_and_send(30)
        worker = await p.run_worker()
        completed = by_type(await p.events(), COMPLETED)
        assert sorted(completed) == sorted(c.call_id for c in calls)
        assert all(len(events) == 1 for events in completed.values())
        assert worker.jobs_retried > 0, "the faults should have forced retries"
        assert await p.dead_letters() == []
        faults_served = {k for k in p.sandbox.requests if k.startswith("fault")}
        assert len(faults_served) >= 4, faults_served


async def test_a_permanent_failure_is_dead_lettered_and_replays_to_success():
    """A 401 (wrong API key) is not retried but dead-lettered with its reason; replay after the fix publishes."""
    async with pipeline(SandboxConfig(seed=8, transcript_share=0.0), WAVIX_API_KEY="wrong-key") as p:
        calls, _ = await p.place_and_send(2)
        await p.run_worker()
        letters = await p.dead_letters()
        assert len(letters) == 2
        assert {f[b"kind"] for f in letters} == {b"process_call"}
        assert all(b"401" in f[b"reason"] for f in letters)
        assert "wrong-key" not in str(letters)
        assert by_type(await p.events(), COMPLETED) == {}

        fixed = await p.with_settings(WAVIX_API_KEY=p.sandbox.config.api_key)
        for entry_id, _ in await p.redis.xrange(p.settings.dead_letter_stream):
            await fixed.replay(entry_id.decode())
        await fixed.run_worker()
        assert sorted(by_type(await p.events(), COMPLETED)) == sorted(c.call_id for c in calls)
        assert await p.dead_letters() == []
