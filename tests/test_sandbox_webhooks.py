"""The sandbox's webhooks: every variant means the same call, and sending is paced, complete and recorded."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import msgspec
import pytest

from contract.webhooks import Kind, classify, decode_on_call, decode_post_call
from sandbox.config import SandboxConfig
from sandbox.server import serve
from sandbox.state import Sandbox
from sandbox.webhooks import (
    ALL_VARIANTS,
    TERMINAL,
    Result,
    Variant,
    deliveries,
    on_call_body,
    on_call_events,
    post_call_body,
    refusals,
    send_webhooks,
    summarize,
    transcription_deliveries,
)
from tests.sandbox_helpers import Receiver, check, component, receiving

CONFIG = SandboxConfig(seed=3, api_key="wx_hooks_key_0123456789", start="2026-07-01T09:00:00Z")


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_variant_of_post_call_names_the_call_and_its_disposition(variant: Variant) -> None:
    """Each post-call variant decodes (contract.webhooks) to the same call id and lower-case disposition."""
    for call in Sandbox(CONFIG).place(40):
        body = post_call_body(call, variant)
        webhook = classify(body)
        assert (webhook.kind, webhook.call_id, webhook.event, webhook.starts_work) == (
            Kind.POST_CALL, call.call_id, call.disposition, True)
        decoded = decode_post_call(body)
        assert str(decoded.charge) == str(msgspec.json.decode(body)["charge"])


def test_variant_shapes_are_the_ones_wavix_used() -> None:
    """spec has `direction`; cdr has the whole-CDR fields and no `direction`; numeric has numbers, `ANSWERED`."""
    call = next(c for c in Sandbox(CONFIG).place(20) if c.answered)
    spec = msgspec.json.decode(post_call_body(call, Variant.SPEC))
    cdr = msgspec.json.decode(post_call_body(call, Variant.CDR))
    numeric = msgspec.json.decode(post_call_body(call, Variant.NUMERIC))
    assert spec["direction"] == call.direction and isinstance(spec["charge"], str)
    assert "direction" not in cdr and {"answered_by", "parent_uuid", "sip_trunk", "forward_fee"} <= set(cdr)
    assert isinstance(numeric["from"], int) and numeric["disposition"] == "ANSWERED"
    assert b'"charge":' + call.charge.encode() in post_call_body(call, Variant.NUMERIC)  # exact, not a float


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_on_call_events_end_with_one_terminal_event_in_every_variant(variant: Variant) -> None:
    """Every call's on-call events decode to its id; only the last one is terminal and it fits the disposition."""
    for call in Sandbox(CONFIG).place(40):
        events = on_call_events(call)
        assert events[0] == "call_setup" and events[-1] == TERMINAL[call.disposition]
        hooks = [classify(on_call_body(call, event, variant)) for event in events]
        assert {h.call_id for h in hooks} == {call.call_id}
        assert [h.starts_work for h in hooks] == [False] * (len(events) - 1) + [True]
    body = msgspec.json.decode(on_call_body(call, "completed", variant))
    assert ("id" in body) == (variant is not Variant.UUID) and ("uuid" in body) == (variant is not Variant.ID)
    assert ("call_finished" in body) == (variant is Variant.FINISHED)


def test_machine_detected_is_reported_on_call() -> None:
    """An outbound call a machine answered says `machine_detected: true` once answered."""
    call = next(c for c in Sandbox(CONFIG).place(200) if c.answered_by == "machine")
    assert decode_on_call(on_call_body(call, "answered", Variant.SPEC)).machine_detected is True
    assert decode_on_call(on_call_body(call, "call_setup", Variant.SPEC)).machine_detected is False


def test_plan_duplicates_and_reorders_deterministically() -> None:
    """Duplicates repeat whole bodies; reordering keeps every delivery; the same seed plans the same."""
    calls = Sandbox(CONFIG).place(50)
    plain = deliveries(calls, on_call_events_too=True, seed=1)
    planned = deliveries(calls, duplicates=0.2, reorder=True, on_call_events_too=True, seed=1)
    assert planned == deliveries(calls, duplicates=0.2, reorder=True, on_call_events_too=True, seed=1)
    originals = [d for d in planned if not d.duplicate]
    assert Counter(d.body for d in originals) == Counter(d.body for d in plain)
    assert [d.body for d in originals] != [d.body for d in plain]  # reordered
    repeats = [d for d in planned if d.duplicate]
    assert 0.1 * len(plain) < len(repeats) < 0.3 * len(plain)
    assert all(d.body in {p.body for p in plain} for d in repeats)


async def test_sending_delivers_every_event_and_records_answers() -> None:
    """Every call's webhooks arrive as JSON POSTs; each result holds what the target answered (200/409)."""
    sandbox = Sandbox(CONFIG)
    calls = sandbox.place(20)
    receiver = Receiver()
    async with receiving(receiver) as url:
        results = await send_webhooks(calls, url, rate=500, duplicates=0.2, reorder=True, on_call_events=True,
                                      seed=5, on_first_send=sandbox.mark_sent)
    expected = sum(len(on_call_events(c)) + 1 for c in calls)
    assert len([r for r in results if not r.duplicate]) == expected
    assert set(receiver.methods) == {"POST"} and set(receiver.content_types) == {b"application/json"}
    got = Counter(classify(body).call_id for body in receiver.bodies)
    assert set(got) == {c.call_id for c in calls}
    assert all(got[c.call_id] >= len(on_call_events(c)) + 1 for c in calls)
    # Reordered, a repeat can overtake its original: the target's answer, not the plan, says which was first.
    assert [r.status for r in results].count(200) == len(set(receiver.bodies)) == expected
    assert summarize(results) == {"200": expected, "409": len(results) - expected}


async def test_sending_keeps_the_rate() -> None:
    """40 webhooks at 200 per second take about 0.2 s: no faster."""
    calls = Sandbox(CONFIG).place(40)
    receiver = Receiver()
    async with receiving(receiver) as url:
        began = time.monotonic()
        results = await send_webhooks(calls, url, rate=200)
        took = time.monotonic() - began
    assert len(results) == 40 and 0.19 <= took < 2.0
    assert results[-1].sent_at >= 0.19


async def test_sending_stops_at_the_deadline_and_reports_unreached_targets() -> None:
    """Past `deadline_s` nothing more is sent (error "deadline"); a closed port is an error, not a status."""
    calls = Sandbox(CONFIG).place(30)
    receiver = Receiver()
    async with receiving(receiver) as url:
        results = await send_webhooks(calls, url, rate=100, deadline_s=0.05)
    assert 1 <= len(receiver.bodies) < 30 and {r.error for r in results[len(receiver.bodies):]} == {"deadline"}
    async with receiving(Receiver()) as closed_url:
        pass
    failed = await send_webhooks(calls[:2], closed_url, rate=100)
    assert all(r.status is None and r.error for r in failed)


async def test_cdr_is_servable_when_the_first_webhook_arrives_and_transcript_follows() -> None:
    """Fetching the CDR on receipt of any webhook succeeds; the transcript is ready only after the delay."""
    sandbox = Sandbox(msgspec.structs.replace(CONFIG, transcript_delay_s=0.5, transcript_failed_share=0.0))
    calls = [c for c in sandbox.place(30) if c.transcript is not None][:3]
    fetched: list[tuple[int, int]] = []
    async with serve(sandbox) as api, httpx.AsyncClient(
        base_url=api, headers={"Authorization": f"Bearer {CONFIG.api_key}"}
    ) as client:

        async def fetch(body: bytes) -> None:
            call_id = classify(body).call_id
            cdr = await client.get(f"/v1/cdrs/{call_id}")
            transcript = await client.get(f"/v1/cdrs/{call_id}/transcription")
            fetched.append((cdr.status_code, transcript.status_code))

        receiver = Receiver()
        receiver.on_body = fetch
        async with receiving(receiver) as url:
            await send_webhooks(calls, url, rate=1000, on_call_events=True, on_first_send=sandbox.mark_sent)
        assert fetched and all(pair == (200, 404) for pair in fetched)
        await asyncio.sleep(0.55)
        statuses = [(await client.get(f"/v1/cdrs/{c.call_id}/transcription")).status_code for c in calls]
        assert statuses == [200] * len(calls)


async def test_transcription_webhooks_follow_each_ready_transcript() -> None:
    """With a delay given, each transcribed call gets `{uuid, status}` once its transcript answers 200, not before."""
    sandbox = Sandbox(msgspec.structs.replace(CONFIG, transcript_delay_s=0.3, transcript_failed_share=0.3))
    calls = sandbox.place(40)
    transcribed = {c.call_id: c.transcript.status for c in calls if c.transcript is not None}
    assert set(transcribed.values()) == {"completed", "failed"}
    seen: dict[str, tuple[str, int]] = {}
    async with serve(sandbox) as api, httpx.AsyncClient(
        base_url=api, headers={"Authorization": f"Bearer {CONFIG.api_key}"}
    ) as client:

        async def on_body(body: bytes) -> None:
            hook = classify(body)
            if hook.kind is Kind.TRANSCRIPTION:
                check(body, component("CDRTranscriptionCompletedWebhook"))
                ready = await client.get(f"/v1/cdrs/{hook.call_id}/transcription")
                seen[hook.call_id] = (hook.event, ready.status_code)

        receiver = Receiver()
        receiver.on_body = on_body
        async with receiving(receiver) as url:
            results = await send_webhooks(calls, url, rate=1000, on_first_send=sandbox.mark_sent,
                                          transcription_delay_s=0.3)
    assert seen == {call_id: (status, 200) for call_id, status in transcribed.items()}
    late = [r for r in results if r.kind == "transcription"]
    assert len(late) == len(transcribed) and min(r.sent_at for r in late) >= 0.3
    assert not [r for r in await send_webhooks(calls[:5], url, rate=1000) if r.kind == "transcription"]


def test_older_on_call_bodies_lack_direction_and_cdr_numeric_has_a_numeric_trunk() -> None:
    """`cdr`/`cdr-numeric` on-call bodies lack `direction` (still a spec `Call`); `cdr-numeric` has numeric trunks."""
    calls = Sandbox(CONFIG).place(40)
    for call in calls:
        for event in on_call_events(call):
            for variant in (Variant.CDR, Variant.CDR_NUMERIC):
                body = on_call_body(call, event, variant)
                assert "direction" not in msgspec.json.decode(body)
                check(body, component("Call"))
            assert msgspec.json.decode(on_call_body(call, event, Variant.SPEC))["direction"] == call.direction
    outbound = next(c for c in calls if c.direction == "outbound")
    trunk = msgspec.json.decode(post_call_body(outbound, Variant.CDR_NUMERIC))["sip_trunk"]
    assert trunk == int(outbound.sip_trunk or 0) and isinstance(trunk, int)
    assert Variant.CDR_NUMERIC not in ALL_VARIANTS


def test_drift_changes_one_unneeded_field_and_keeps_the_call_id() -> None:
    """A drift share of 0.5 changes about half the bodies, each in one named way, never the call id."""
    calls = Sandbox(CONFIG).place(120)
    plain = {(d.call_id, d.kind, d.event): d for d in deliveries(calls, on_call_events_too=True, seed=2)}
    drifted = deliveries(calls, on_call_events_too=True, seed=2, drift=0.5)
    assert len(drifted) == len(plain)
    changed = [d for d in drifted if d.drift is not None]
    assert 0.35 * len(drifted) < len(changed) < 0.65 * len(drifted)
    kinds = {d.drift for d in changed}
    assert {"sip_trunk-number", "machine_detected-text", "event_payload-string", "null-disposition",
            "event_type-added", "charge-number", "tag-number", "event_time-number", "unknown-field"} <= kinds
    for delivery in changed:
        original = plain[(delivery.call_id, delivery.kind, delivery.event)].body
        body, before = msgspec.json.decode(delivery.body), msgspec.json.decode(original)
        assert body.get("id", body.get("uuid")) == delivery.call_id and delivery.body != original
        differ = {k for k in body if repr(body.get(k)) != repr(before.get(k))}  # repr: 1 is not True here
        assert len(differ) in (1, 2) and differ <= {
            "sip_trunk", "charge", "x_wavix_trace", "event_type", "disposition", "status", "machine_detected", "tag",
            "event_time", "event_payload"}
    unchanged = [d for d in drifted if d.drift is None]
    assert all(d.body == plain[(d.call_id, d.kind, d.event)].body for d in unchanged)


def test_dropped_calls_send_progress_but_nothing_that_starts_work() -> None:
    """A call marked `webhooks_dropped` sends its progress events only: no post-call, terminal or transcription."""
    calls = Sandbox(msgspec.structs.replace(CONFIG, drop_webhooks_share=0.3)).place(60)
    dropped = {c.call_id for c in calls if c.webhooks_dropped}
    assert dropped
    plan = deliveries(calls, on_call_events_too=True, seed=1) + transcription_deliveries(calls)
    for delivery in plan:
        hook = classify(delivery.body)
        assert not (hook.call_id in dropped and hook.starts_work), delivery
    assert {classify(d.body).call_id for d in plan if classify(d.body).starts_work} == {
        c.call_id for c in calls} - dropped


@pytest.mark.parametrize("drift", [0.3, 1.0])
def test_drifted_bodies_start_work_exactly_where_the_call_ended(drift: float) -> None:
    """Issue #22's audit as a test: with drift on, in every variant, a body starts work (contract.webhooks)
    exactly when it is a post-call or an on-call event that ends the call; no drifted progress event does,
    and none takes the call's dedup key early, dropped calls included."""
    config = msgspec.structs.replace(CONFIG, drop_webhooks_share=0.1)
    calls = Sandbox(config).place(400)
    plan = deliveries(calls, variants=list(Variant), on_call_events_too=True, seed=5, drift=drift)
    drifted_progress = 0
    for delivery in plan:
        ends = delivery.kind == "post_call" or delivery.event in TERMINAL.values()
        hook = classify(delivery.body)
        assert hook.starts_work == ends, delivery
        drifted_progress += bool(delivery.drift) and not ends
    assert drifted_progress > 50


def test_refusals_count_webhooks_without_any_2xx_and_ignore_drifted_ones() -> None:
    """A webhook is refused when none of its answers is 2xx; a repeat's 200 saves it; drift, no answer do not count."""
    def result(call_id: str, status: int | None, *, duplicate: bool = False, drift: str | None = None,
               at: float = 0.0) -> Result:
        return Result(call_id=call_id, kind="post_call", event="answered", variant=Variant.SPEC, duplicate=duplicate,
                      status=status, error=None, sent_at=at, elapsed_ms=1.0, drift=drift, answer="nope")

    results = [result("a", 409, at=0.2), result("a", 200, duplicate=True, at=0.1), result("b", 404, at=0.3),
               result("b", 404, duplicate=True, at=0.4), result("c", 422, drift="tag-number"), result("d", None),
               result("e", 500, at=0.5)]
    count, first = refusals(results)
    assert count == 2 and first is not None and (first.call_id, first.status, first.answer) == ("b", 404, "nope")
    assert refusals([result("a", 200)]) == (0, None)
