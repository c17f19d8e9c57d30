"""One transcript outcome per call, end to end: Wavix's transcription webhook and our poll share one job.

The allowed sequences (workers/process.py): nothing -> transcribed; nothing -> unavailable(reason);
unavailable(timed_out) -> transcribed when Wavix finishes after we stopped waiting. Never two of a kind.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from prometheus_client import generate_latest

from contract.events import TRANSCRIBED, UNAVAILABLE
from sandbox.api import ASGIApp, Message, Receive, Scope, Send, create_app
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import Server
from tests.conftest import TOKEN
from tests.pipeline import by_type, pipeline

ALL_TRANSCRIBED = {"transcript_share": 1.0, "transcript_failed_share": 0.0, "machine_share": 0.0}


class HeldTranscript:
    """Wavix (the sandbox's app) with its first transcript answer held until `release` is set: the poll has
    asked and been answered "not ready", but has not acted on the answer yet."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.call_id = ""
        self.asked, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.endswith("/transcription") or self.call_id:
            await self._app(scope, receive, send)
            return
        self.call_id = path.split("/")[-2]
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self._app(scope, receive, keep)
        self.asked.set()
        await self.release.wait()
        for message in answer:
            await send(message)


async def test_webhook_and_poll_publish_one_transcribed_event_per_call() -> None:
    """The webhook says ready while the poll is queued: exactly one `transcribed` per call, on every sink."""
    config = SandboxConfig(seed=6, transcript_delay_s=0.0, **ALL_TRANSCRIBED)
    async with pipeline(config) as p:
        calls, _ = await p.place_and_send(10, transcription_delay_s=0.0, duplicates=0.5)
        worker = await p.run_worker()
        events = await p.events()
        answered = {c.call_id for c in calls if c.answered and c.transcript is not None}
        assert answered, "the seed should give transcribed calls"
        metrics = generate_latest(worker.ctx["resources"].metrics.registry).decode()
        published = f'wavix_jobs_total{{function="fetch_transcript",outcome="published"}} {len(answered)}.0'
        assert published in metrics  # one job published each transcript: the other path found it done
        assert Counter(e.subject for e in events if e.type == TRANSCRIBED) == dict.fromkeys(answered, 1)
        assert not by_type(events, UNAVAILABLE)


async def test_a_late_transcript_after_we_stopped_waiting_is_still_published_once() -> None:
    """We give up (timed_out) before Wavix finishes; its webhook then brings `transcribed`, once; a repeat of
    that webhook, or another poll, publishes nothing more."""
    config = SandboxConfig(seed=6, transcript_delay_s=3600.0, **ALL_TRANSCRIBED)
    async with pipeline(config, TRANSCRIPT_POLL="1", TRANSCRIPT_WAIT="1") as p:
        calls, _ = await p.place_and_send(10)
        await p.run_worker()
        waited = by_type(await p.events(), UNAVAILABLE)
        answered = [c for c in calls if c.answered and c.transcript is not None]
        assert answered and {c.call_id for c in answered} == set(waited)
        assert {e[0].data.reason for e in waited.values()} == {"timed_out"}
        for call in answered:
            p.sandbox.finish_transcript(call.call_id)
        for _ in range(2):  # Wavix's transcription webhook, and a repeat of it
            for call in answered:
                answer = await p.receiver.post(f"/webhooks/wavix/{TOKEN}",
                                               json={"uuid": call.call_id, "status": "completed"})
                assert answer.status_code == 200
        await p.run_worker()
        events = await p.events()
        assert Counter(e.subject for e in events if e.type == TRANSCRIBED) == {c.call_id: 1 for c in answered}
        assert Counter(e.subject for e in events if e.type == UNAVAILABLE) == {c.call_id: 1 for c in answered}


async def test_a_transcript_announced_while_the_last_poll_runs_is_still_published() -> None:
    """Wavix's transcription webhook arrives while the call's last poll is waiting on its "not ready" answer
    (the poll read the call's webhooks before it came): the receiver accepts it, the poll ends as
    `unavailable` (timed_out), and the transcript is then fetched and published as `transcribed`, once."""
    config = SandboxConfig(seed=6, transcript_delay_s=3600.0, **ALL_TRANSCRIBED)
    async with pipeline(config, TRANSCRIPT_POLL="1", TRANSCRIPT_WAIT="1") as p:
        wavix = HeldTranscript(create_app(p.sandbox))
        server = Server(wavix)
        p = await p.with_settings(WAVIX_API_URL=await server.start())
        try:
            await p.place_and_send(4)
            worker = asyncio.create_task(p.run_worker())
            await asyncio.wait_for(wavix.asked.wait(), 30)
            p.sandbox.finish_transcript(wavix.call_id)
            answer = await p.receiver.post(f"/webhooks/wavix/{TOKEN}",
                                           json={"uuid": wavix.call_id, "status": "completed"})
            assert answer.status_code == 200 and answer.json()["status"] == "accepted"
            wavix.release.set()
            await asyncio.wait_for(worker, 60)
        finally:
            await server.close()
        events = [e for e in await p.events() if e.subject == wavix.call_id]
        outcomes = [(e.type, getattr(e.data, "reason", None)) for e in events[1:]]
        assert outcomes == [(UNAVAILABLE, "timed_out"), (TRANSCRIBED, None)] and not await p.dead_letters()


async def test_a_transcript_wavix_announced_is_fetched_even_while_polling_is_paused() -> None:
    """Wavix's 403 "not provisioned" pauses our polling account-wide, but a transcript Wavix announces by
    webhook is fetched all the same."""
    config = SandboxConfig(seed=6, transcript_delay_s=0.0, faults=Faults(forbidden_transcript=1.0),
                           **ALL_TRANSCRIBED)
    async with pipeline(config) as p:
        calls, _ = await p.place_and_send(4)
        await p.run_worker()
        answered = {c.call_id for c in calls if c.answered and c.transcript is not None}
        assert {e[0].data.reason for e in by_type(await p.events(), UNAVAILABLE).values()} == {"not_provisioned"}
        assert set(by_type(await p.events(), UNAVAILABLE)) == answered
        assert await p.redis.exists(f"{p.settings.key_prefix}transcripts:not_provisioned") == 1
        p.sandbox.set_faults(Faults())
        more, _ = await p.place_and_send(3, transcription_delay_s=0.0)
        await p.run_worker()
        announced = {c.call_id for c in more if c.answered and c.transcript is not None}
        assert announced and announced <= set(by_type(await p.events(), TRANSCRIBED))


async def test_a_403_that_does_not_say_not_provisioned_pauses_nothing() -> None:
    """A 403 on one transcript whose message is not Wavix's "not provisioned" ends that call's transcript as
    unavailable, but never pauses polling for the account: the next calls' transcripts are fetched."""
    config = SandboxConfig(seed=6, transcript_delay_s=0.0, **ALL_TRANSCRIBED,
                           faults=Faults(forbidden_transcript=1.0, forbidden_message="Access denied."))
    async with pipeline(config) as p:
        calls, _ = await p.place_and_send(4)
        await p.run_worker()
        answered = {c.call_id for c in calls if c.answered and c.transcript is not None}
        assert answered and set(by_type(await p.events(), UNAVAILABLE)) == answered
        assert await p.redis.exists(f"{p.settings.key_prefix}transcripts:not_provisioned") == 0
        p.sandbox.set_faults(Faults())
        more, _ = await p.place_and_send(3)
        await p.run_worker()
        polled = {c.call_id for c in more if c.answered and c.transcript is not None}
        assert polled and polled <= set(by_type(await p.events(), TRANSCRIBED))
