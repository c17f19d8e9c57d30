"""Ops events through the real delivery: one `...opened` and one `...resolved` per incident on a subscribed Redis
Stream, however many workers check and even when one dies between queueing and marking; never to the destination
the incident is about, never to a destination that did not subscribe.

Real Redis, the real worker (in burst mode, and as two `wavix-events worker` processes), a webhook destination
that answers 503 and then recovers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from contract.events import CloudEvent, decode_event
from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import Pipeline, pipeline, worker_process
from workers.alert.alerting import slack_only
from workers.alert.incidents import check_pipeline
from workers.alert.ops import Teller, told_key
from workers.deliver import health
from workers.deliver.route import Destination, Filter, load_destinations

FAILING_OPENED = "wavix.ops.destination_failing.opened"
FAILING_RESOLVED = "wavix.ops.destination_failing.resolved"


@asynccontextmanager
async def subscribed(tmp_path: Path, receiver: WebhookReceiver, **env: str) -> AsyncIterator[tuple[Pipeline, str]]:
    """A pipeline routing calls to `events` (a Redis Stream, no filter) and `crm` (`receiver`, retried every
    second), and the ops events to `ops`, a Redis Stream whose filter names them; yields it and that stream."""
    await receiver.start()
    events, ops = f"test:events:{uuid.uuid4().hex}", f"test:ops:{uuid.uuid4().hex}"
    routing = tmp_path / "sinks.yaml"
    routing.write_text(
        "destinations:\n"
        f"  - name: events\n    url: {REDIS_URL}?stream={events}\n"
        f"  - name: crm\n    url: http://127.0.0.1:{receiver.port}/hooks\n    secret: {receiver.secret}\n"
        "    retry: {schedule: [1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]}\n"
        f"  - name: ops\n    url: {REDIS_URL}?stream={ops}\n    filter: {{types: [wavix.ops.*]}}\n")
    try:
        async with pipeline(SandboxConfig(seed=5, transcript_share=0.0), SINKS_CONFIG=str(routing),
                            EVENTS_STREAM=events, **env) as p:
            try:
                yield p, ops
            finally:
                await p.redis.delete(ops)
    finally:
        await receiver.stop()


async def read(p: Pipeline, stream: str) -> list[CloudEvent]:
    return [decode_event(fields[b"event"]) for _, fields in await p.redis.xrange(stream)]


async def until(done: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_two_workers_tell_a_failing_destinations_incident_once_when_it_opens_and_once_when_it_resolves(
    tmp_path: Path,
) -> None:
    """Two worker processes, crm answering 503: past PIPELINE_FAILING_AFTER (1 s) the `ops` stream receives one
    `wavix.ops.destination_failing.opened` about crm; crm recovers and it receives one `...resolved`, with the
    same subject (the incident id). crm itself and the unfiltered `events` destination receive no ops event."""
    receiver = WebhookReceiver(status=503)
    async with subscribed(tmp_path, receiver, PIPELINE_FAILING_AFTER="1") as (p, ops):
        async with AsyncExitStack() as workers:
            for n in range(2):
                await workers.enter_async_context(worker_process(p, tmp_path / f"worker{n}.log"))
            await p.place_and_send(2)

            async def told(event_type: str) -> bool:
                return any(e.type == event_type for e in await read(p, ops))
            await until(lambda: told(FAILING_OPENED), 30, "the opened event")
            receiver.status = 204
            await until(lambda: told(FAILING_RESOLVED), 30, "the resolved event")
        await p.run_worker()  # whatever the two left queued, run out
        failing = [e for e in await read(p, ops) if e.type.startswith("wavix.ops.destination_failing.")]
        assert [e.type for e in failing] == [FAILING_OPENED, FAILING_RESOLVED]
        opened, resolved = failing
        assert opened.subject == resolved.subject and opened.subject.startswith("destination_failing:crm:")
        assert opened.data.destination == "crm" and resolved.data.resolved_at is not None  # type: ignore[union-attr]
        everything = await read(p, ops)
        assert len({e.id for e in everything}) == len(everything)  # no event twice
        assert not [e for e in await p.events() if e.type.startswith("wavix.ops.")]
        assert not [r for r in receiver.received if b'"wavix.ops.' in r.body]


async def test_checks_racing_and_a_worker_dying_between_queueing_and_marking_still_deliver_each_phase_once(
    tmp_path: Path,
) -> None:
    """Three checks at once, then the told marks lost (a worker died after queueing, before marking) and three
    more: the burst worker delivers one opened event to `ops`. The same for the resolve. None goes to crm, the
    destination the incident is about, though its filter would take it."""
    receiver = WebhookReceiver()
    async with subscribed(tmp_path, receiver) as (p, ops):
        prefix = p.settings.key_prefix
        routing = load_destinations(p.settings.sinks_config, {})
        wide = tuple(d if d.name != "crm" else _subscribed(d) for d in routing)
        teller = Teller(lambda: wide, queue=p.settings.queue_name, expiry_s=60)

        async def checks() -> None:
            await asyncio.gather(*(check_pipeline(p.redis, slack_only(), ["crm"], prefix=prefix, failing_after_s=1,
                                                  disable_after_s=0, teller=teller) for _ in range(3)))
        now_s, _ = await p.redis.time()
        await p.redis.hset(health.keys(prefix, "crm").health,  # type: ignore[misc]
                           mapping={"since_ms": (int(now_s) - 60) * 1000, "streak": 9, "error": "http_503"})
        await checks()
        await p.redis.delete(told_key(prefix))
        await checks()
        await p.run_worker()
        await p.redis.hdel(health.keys(prefix, "crm").health, "since_ms")  # type: ignore[misc]
        await checks()
        await p.redis.delete(told_key(prefix))
        await checks()
        await p.run_worker()
        assert [e.type for e in await read(p, ops)] == [FAILING_OPENED, FAILING_RESOLVED]
        assert not receiver.received


def _subscribed(d: Destination) -> Destination:
    """The destination `d` with a filter that takes every event, ops events included."""
    return dataclasses.replace(d, filter=Filter(types=("*",)))
