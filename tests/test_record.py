"""The per-call record: what the worker writes for a call, the call index, and `wavix-events trace`."""

from __future__ import annotations

import json
import uuid

import msgspec
from redis.asyncio import Redis

from console import trace
from contract.events import COMPLETED
from contract.record import RECORD_KEPT, calls_key, decode_entry, record_key, summary_key, without_query
from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL
from tests.pipeline import Pipeline, by_type, pipeline
from wavix_events.cli import main
from workers.operate import observe, record
from workers.runtime.settings import worker_options


async def _run_observed_worker(p: Pipeline) -> None:
    observed = observe.options(worker_options(p.settings))
    await p.run_worker(functions=observed["functions"], on_startup=observed["on_startup"])


async def _cleanup(p: Pipeline, call_ids: list[str]) -> None:
    prefix = p.settings.key_prefix
    keys = [k async for k in p.redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await p.redis.delete(*keys)


async def test_a_published_call_has_its_whole_story_in_order():
    """Webhooks (with their duplicates), the job try, the CDR fetch, the event and its delivery are all kept,
    oldest first, and the call is indexed with its outcome and direction."""
    async with pipeline(SandboxConfig(seed=3, transcript_share=0.0)) as p:
        calls, _ = await p.place_and_send(3, duplicates=1.0)
        await _run_observed_worker(p)
        try:
            events = by_type(await p.events(), COMPLETED)
            call = calls[0]
            timeline = await trace.read(p.redis, p.settings.key_prefix, call.call_id)
            steps = [s.step for s in timeline.steps]
            assert steps[0] == "webhook"
            assert {"job", "fetch", "event", "delivery"} <= set(steps)
            assert [s.at_ms for s in timeline.steps] == sorted(s.at_ms for s in timeline.steps)
            statuses = [s.fields["status"] for s in timeline.steps if s.step == "webhook"]
            assert "accepted" in statuses and "duplicate" in statuses
            job = next(s for s in timeline.steps if s.step == "job")
            assert job.fields["outcome"] == "published" and job.ok
            fetch = next(s for s in timeline.steps if s.step == "fetch")
            assert fetch.fields["what"] == "cdr" and fetch.fields["status"] == "200"
            event = next(s for s in timeline.steps if s.step == "event")
            assert event.fields["event_id"] == events[call.call_id][0].id
            delivery = next(s for s in timeline.steps if s.step == "delivery")
            assert delivery.fields["outcome"] == "published" and delivery.fields["destination"]
            assert timeline.summary is not None
            assert timeline.summary.outcome == events[call.call_id][0].data.outcome
            assert timeline.summary.direction == call.direction
            indexed = await p.redis.zrange(calls_key(p.settings.key_prefix), 0, -1)
            assert sorted(i.decode() for i in indexed) == sorted(c.call_id for c in calls)
            ttl = await p.redis.ttl(record_key(p.settings.key_prefix, call.call_id))
            assert 0 < ttl <= p.settings.webhook_dedup_ttl
            summary_ttl = await p.redis.ttl(summary_key(p.settings.key_prefix, call.call_id))
            assert 0 < summary_ttl <= p.settings.webhook_dedup_ttl
        finally:
            await _cleanup(p, [c.call_id for c in calls])


async def test_alerts_are_in_the_record():
    """Each alert a call queues for Slack appears in its record with its reason."""
    async with pipeline(SandboxConfig(seed=5, transcript_share=0.0, machine_share=0.5)) as p:
        calls, _ = await p.place_and_send(10)
        await _run_observed_worker(p)
        try:
            alerted = {cid: e[0].data.alert_reasons for cid, e in by_type(await p.events(), COMPLETED).items()
                       if e[0].data.alert_reasons}
            assert alerted, "the seed should give alerted calls"
            for call_id, reasons in alerted.items():
                timeline = await trace.read(p.redis, p.settings.key_prefix, call_id)
                assert sorted(s.fields["reason"] for s in timeline.steps if s.step == "alert") == sorted(reasons)
                assert timeline.summary is not None and timeline.summary.alerted
        finally:
            await _cleanup(p, [c.call_id for c in calls])


async def test_a_failing_fetch_is_recorded_as_a_retry():
    """A 5xx from Wavix shows in the record as a failed fetch and a job try whose outcome is "retry"."""
    from sandbox.faults import Faults

    config = SandboxConfig(seed=4, transcript_share=0.0, faults=Faults(server_error=0.5))
    async with pipeline(config, RETRY_MAX_DELAY="0.2") as p:
        calls, _ = await p.place_and_send(6)
        await _run_observed_worker(p)
        try:
            bad_fetches, retries = 0, 0
            for call in calls:
                timeline = await trace.read(p.redis, p.settings.key_prefix, call.call_id)
                bad_fetches += sum(1 for s in timeline.steps if s.step == "fetch" and not s.ok)
                retries += sum(1 for s in timeline.steps if s.step == "job" and s.fields["outcome"] == "retry")
            assert bad_fetches >= 1 and retries >= 1
        finally:
            await _cleanup(p, [c.call_id for c in calls])


async def test_notes_are_one_round_trip_and_trimmed():
    """A job's notes are written together; the list keeps only the newest RECORD_KEPT entries."""
    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        notes = record.begin("call-1", record.now_ms())
        for i in range(RECORD_KEPT + 20):
            record.note("fetch", what="cdr", status="200", attempt=i)
        assert await redis.exists(record_key(prefix, "call-1")) == 0  # nothing written before flush
        assert await record.Writer(redis, prefix, 60).flush(notes)
        kept = [decode_entry(raw) for raw in await redis.lrange(record_key(prefix, "call-1"), 0, -1)]
        assert len(kept) == RECORD_KEPT
        assert kept[0].attempt == 20 and kept[-1].attempt == RECORD_KEPT + 19
    finally:
        await redis.delete(record_key(prefix, "call-1"))
        await redis.aclose()


def test_recording_links_lose_query_and_credentials():
    """A recording link is shown without its query string, fragment or user:password."""
    assert without_query("https://u:p@cdn.example/rec/1.mp3?token=s3cret#t") == "https://cdn.example/rec/1.mp3"
    assert without_query("https://cdn.example/rec/1.mp3") == "https://cdn.example/rec/1.mp3"


async def test_trace_command_prints_the_timeline_and_json(capsys, monkeypatch):
    """`wavix-events trace CALL_ID` prints one line per step; `--json` gives the same steps as JSON; an unknown
    call exits 1."""
    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    call_id = str(uuid.uuid4())
    try:
        notes = record.begin(call_id, record.now_ms())
        record.note("job", job="process_call", attempt=1, outcome="published")
        await record.Writer(redis, prefix, 60).flush(notes)
        monkeypatch.setenv("REDIS_URL", REDIS_URL)
        monkeypatch.setenv("KEY_PREFIX", prefix)
        assert await _cli(["trace", call_id]) == 0
        out = capsys.readouterr().out
        assert call_id in out and "process_call try 1: published" in out
        assert await _cli(["trace", call_id, "--json"]) == 0
        parsed = json.loads(capsys.readouterr().out)
        assert parsed["call_id"] == call_id and parsed["steps"][0]["step"] == "job"
        assert await _cli(["trace", "no-such-call"]) == 1
    finally:
        await redis.delete(record_key(prefix, call_id))
        await redis.aclose()


async def _cli(argv: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(main, argv)


def test_entry_is_compact():
    """An entry carries only the fields its step uses (omit_defaults): a delivery note stays under 160 bytes."""
    raw = msgspec.msgpack.encode(record.Entry(at_ms=1, step="delivery", destination="events", event_id="0" * 36,
                                              attempt=1, outcome="published", ms=1.5))
    assert len(raw) < 160 and b"reason" not in raw
