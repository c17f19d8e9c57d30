"""A 30-second RabbitMQ outage: the event reaches RabbitMQ once it is back, Redis and NATS on time."""

from __future__ import annotations

import asyncio
import contextlib
import time

from contract.events import COMPLETED
from sandbox.config import SandboxConfig
from tests.helpers.sinks import NatsHarness, RabbitHarness, TcpProxy
from tests.pipeline import by_type, pipeline
from workers.runtime.settings import create_worker

OUTAGE_S = 30.0


async def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return bool(await check())


async def test_an_event_published_during_a_rabbitmq_outage_arrives_after_it_and_the_others_on_time(tmp_path):
    """RabbitMQ unreachable for 30 s (a cut TCP proxy): Redis Streams and NATS get every event at once,
    RabbitMQ gets each of them exactly once after it comes back, and nothing is dead-lettered."""
    rabbit, nats = RabbitHarness(), NatsHarness()
    await rabbit.setup()
    await nats.setup()
    proxy = await TcpProxy("127.0.0.1", rabbit.upstream_port).start()
    config = tmp_path / "sinks.yaml"
    try:
        async with pipeline(SandboxConfig(seed=17, transcript_share=0.0), TRANSCRIPT_POLL="3600",
                            DELIVERY_INLINE_TIMEOUT="1", SINKS_CONFIG=str(config)) as p:
            config.write_text(
                "destinations:\n"
                f"  - name: redis\n    url: {p.settings.redis_url}?stream={p.settings.events_stream}\n"
                f"  - name: rabbit\n    url: {rabbit.url(proxy.port)}\n"
                "    filter: {types: [wavix.call.completed]}\n"
                "    retry: {schedule: [3s], max_age: 75s}\n"  # the default waits 5 min after the second try
                f"  - name: nats\n    url: {nats.url()}\n"
                "    filter: {types: [wavix.call.completed]}\n"
            )
            worker = create_worker(p.settings, poll_delay=0.05, handle_signals=False)
            running = asyncio.create_task(worker.main())
            try:
                await proxy.cut()
                cut_at = time.monotonic()
                calls, _ = await p.place_and_send(3)
                ids = sorted(c.call_id for c in calls)

                async def redis_has_all() -> bool:
                    return sorted(by_type(await p.events(), COMPLETED)) == ids

                assert await wait_for(redis_has_all, 10), "Redis Streams did not get the events on time"
                on_nats = await nats.received(3, timeout=10)
                assert sorted(r.attributes["headers"]["Nats-Msg-Id"].split(":")[1] for r in on_nats) == ["nats"] * 3
                assert time.monotonic() - cut_at < 15, "the healthy sinks waited for the broken one"
                assert await rabbit.read() == []

                await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
                await proxy.restore()
                delivered = await rabbit.received(3, timeout=30)
                expected = {e.id for e in (await p.events())}
                assert sorted(r.event_id for r in delivered) == sorted(expected)
                assert len({r.event_id for r in delivered}) == 3
                assert {r.event_id for r in on_nats} == expected
                assert await p.dead_letters() == []
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                await worker.close()
    finally:
        await proxy.cut()
        await rabbit.cleanup()
        await nats.cleanup()
