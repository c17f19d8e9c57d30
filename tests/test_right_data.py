"""Right data for every call, end to end: drifted webhooks, any arrival order, wrong and oversized CDRs.

The real receiver, Redis and arq worker against the Wavix sandbox; only Wavix and Slack are stand-ins.
"""

from __future__ import annotations

import re
from collections import Counter

from contract.events import COMPLETED, TRANSCRIBED, encode_event
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.webhooks import ALL_VARIANTS
from tests.pipeline import by_type, pipeline

FAST_RETRIES = {"RETRY_MAX_DELAY": "0.05"}


async def test_drifted_webhooks_in_every_variant_give_every_call_its_direction() -> None:
    """30% of bodies drift in type, on-call bodies lack direction: every webhook is 2xx, every call one event,
    and no call whose direction the sandbox knows is published with direction unknown."""
    async with pipeline(SandboxConfig(seed=21, transcript_share=0.0)) as p:
        calls, results = await p.place_and_send(30, variants=ALL_VARIANTS, duplicates=0.3, reorder=True,
                                                on_call_events=True, drift=0.3)
        assert {r.status for r in results} == {200}
        assert any(r.drift for r in results), "the sandbox should have drifted some bodies"
        await p.run_worker()
        completed = by_type(await p.events(), COMPLETED)
        assert {c: len(e) for c, e in completed.items()} == {c.call_id: 1 for c in calls}
        directions = {c.call_id: completed[c.call_id][0].data.direction for c in calls}
        assert directions == {c.call_id: c.direction for c in calls}


async def test_the_same_call_gives_the_same_event_whatever_order_its_webhooks_came_in() -> None:
    """Two runs of the same calls with their webhooks in different orders publish byte-identical events."""
    published: list[dict[str, bytes]] = []
    for order in (1, 2):
        async with pipeline(SandboxConfig(seed=8, transcript_share=0.0, start="2026-07-01T09:00:00Z")) as p:
            await p.place_and_send(20, variants=ALL_VARIANTS, reorder=True, on_call_events=True, seed=order,
                                   duplicates=0.5)
            await p.run_worker()
            events = [e for e in await p.events() if e.type == COMPLETED]
            # Each run serves its sandbox on a port of its own: the recording link is the one difference allowed.
            published.append({e.subject: re.sub(rb"127\.0\.0\.1:\d+", b"sandbox", encode_event(e)) for e in events})
    assert len(published[0]) == 20 and published[0] == published[1]


async def test_transcribed_events_carry_the_calls_direction_and_roles() -> None:
    """The transcript event of a call says the same direction as its completed event, and its turns have roles,
    even when Wavix's transcripts carry the spec's nulls and its transcription webhooks race our poll."""
    config = SandboxConfig(seed=4, transcript_share=1.0, transcript_failed_share=0.0, machine_share=0.0,
                           transcript_nulls_share=1.0, transcript_delay_s=0.5)
    async with pipeline(config) as p:
        await p.place_and_send(12, on_call_events=True, transcription_delay_s=0.5)
        await p.run_worker()
        events = await p.events()
        transcribed, completed = by_type(events, TRANSCRIBED), by_type(events, COMPLETED)
        assert transcribed, "answered calls with transcripts should be transcribed"
        for call_id, [event] in transcribed.items():
            assert event.data.direction == completed[call_id][0].data.direction != "unknown"
            named = [turn for turn in event.data.turns if turn.speaker is not None]
            assert all(turn.role != "unknown" for turn in named), call_id
        assert all(len(e) == 1 for e in transcribed.values())
        assert any(turn.role == "agent" for [e] in transcribed.values() for turn in e.data.turns)


async def test_a_cdr_for_another_call_is_dead_lettered_never_published() -> None:
    """Wavix answering with the wrong call's CDR: retried, then a dead letter `cdr_mismatch` per call; nothing
    published for any of them (the other call's data never goes out under this call's name)."""
    config = SandboxConfig(seed=2, transcript_share=0.0, faults=Faults(wrong_cdr=1.0))
    async with pipeline(config, **FAST_RETRIES) as p:
        calls, _ = await p.place_and_send(3)
        await p.run_worker()
        assert await p.events() == []
        letters = await p.dead_letters()
        assert Counter(f[b"call_id"].decode() for f in letters) == {c.call_id: 1 for c in calls}
        assert all(f[b"reason"].startswith(b"cdr_mismatch") for f in letters)


async def test_an_oversized_cdr_is_dead_lettered_too_large() -> None:
    """A CDR over WAVIX_MAX_BODY is dead-lettered `too_large` at once and never published."""
    config = SandboxConfig(seed=2, transcript_share=0.0, faults=Faults(oversized_cdr=1.0))
    async with pipeline(config, **FAST_RETRIES) as p:
        calls, _ = await p.place_and_send(2)
        await p.run_worker()
        assert await p.events() == []
        letters = await p.dead_letters()
        assert sorted(f[b"call_id"].decode() for f in letters) == sorted(c.call_id for c in calls)
        assert all(f[b"reason"].startswith(b"too_large") and f[b"attempts"] == b"1" for f in letters)
