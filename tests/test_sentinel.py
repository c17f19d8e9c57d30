"""Redis Sentinel, end to end on loopback: a primary, two replicas and three Sentinels (chaos/sentinel.py), the
receiver and a real `wavix-events worker` process all given the Sentinel URL.

The primary is killed with -9 under a steady stream of webhooks: the Sentinels promote a replica, the receiver
and the worker follow it without a restart, and every webhook answered 200 ends in exactly one completed
event. With ACK_REPLICAS=1 a 200 means a replica had the job (WAIT), so the promoted replica has every
acknowledged call; a receiver that cannot get that confirmation answers 503 `queue_not_replicated`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis as redis_client
from litestar.testing import AsyncTestClient
from redis.exceptions import RedisError

from chaos.sentinel import SentinelGroup
from contract import redisurl
from contract.events import COMPLETED, decode_event
from contract.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import serve as serve_sandbox
from sandbox.state import Sandbox
from sandbox.webhooks import send_webhooks
from service.app import create_app
from tests.conftest import TOKEN

CALLS = 150
RATE = 50.0  # webhooks a second: three seconds of traffic, the primary killed one second in
SETTLE_S = 90.0  # bound on the wait for the last event (a guard, not the measure: every event comes within seconds)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with SentinelGroup(tmp_path / "redis", replicas=2) as g:
        yield g


async def completed_counts(redis: object, stream: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, fields in await redis.xrange(stream):  # type: ignore[attr-defined]
        event = decode_event(fields[b"event"])
        if event.type == COMPLETED:
            counts[event.subject] = counts.get(event.subject, 0) + 1
    return counts


@asynccontextmanager
async def worker_process(env: dict[str, str], log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A worker process, yielded once it has started (its `worker.started` line): a fault injected while it
    is still importing would hit its start, where an unreachable Redis is a one-line exit by design."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wavix_events.cli", "worker", env={**os.environ, **env},
            stdout=asyncio.subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while b"worker.started" not in log.read_bytes():
            assert process.returncode is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the worker did not start within 60 s"
            await asyncio.sleep(0.1)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_webhooks_keep_flowing_across_a_failover_and_every_acknowledged_call_is_published_once(
        group: SentinelGroup, tmp_path: Path) -> None:
    """kill -9 of the primary one second into three seconds of webhooks (ACK_REPLICAS=1): webhooks get a 503
    while no primary answers; once the receiver is ready again (the same process), every webhook of a second
    burst gets 200; the worker process stays up, and each call answered 200, before the failover or after it,
    has exactly one completed event on the new primary."""
    sandbox = Sandbox(SandboxConfig(seed=61, transcript_share=0.0))
    async with serve_sandbox(sandbox) as wavix_url:
        env = {"REDIS_URL": group.url, "WEBHOOK_TOKENS": TOKEN, "WAVIX_API_URL": wavix_url, "ACK_REPLICAS": "1",
               "WAVIX_API_KEY": sandbox.config.api_key, "WORKER_HEALTH_PORT": "0", "TRANSCRIPT_POLL": "3600",
               "RECONCILE_INTERVAL": "0", "LOG_LEVEL": "INFO"}
        settings = Settings.from_env(env)
        log = tmp_path / "worker.log"
        async with worker_process(env, log) as worker, AsyncTestClient(app=create_app(settings)) as receiver:
            target = f"/webhooks/wavix/{TOKEN}"
            sending = asyncio.create_task(send_webhooks(sandbox.place(CALLS), target, client=receiver, rate=RATE,
                                                        on_first_send=sandbox.mark_sent))
            await asyncio.sleep(1.0)  # traffic under way (the fault's moment, not a wait for a result)
            killed_at = time.monotonic()
            old, new = await asyncio.to_thread(group.kill_primary)
            promoted_s = time.monotonic() - killed_at
            during = await sending
            deadline = time.monotonic() + SETTLE_S
            while (await receiver.get("/readyz")).status_code != 200:  # the receiver finds the new primary
                assert time.monotonic() < deadline, "the receiver never found the promoted replica"
                await asyncio.sleep(0.2)
            after = await send_webhooks(sandbox.place(CALLS // 5), target, client=receiver, rate=RATE,
                                        on_first_send=sandbox.mark_sent)
            assert [r.status for r in after] == [200] * len(after)
            accepted = {r.call_id for r in during + after if r.status == 200}
            assert new.port != old.port and group.primary_port() == new.port
            redis = redisurl.client(group.url)
            try:
                deadline = time.monotonic() + SETTLE_S
                while (counts := await completed_counts(redis, settings.events_stream)).keys() < accepted:
                    assert worker.returncode is None, log.read_text()[-4000:]
                    assert time.monotonic() < deadline, (len(accepted - counts.keys()), log.read_text()[-3000:])
                    await asyncio.sleep(0.2)
            finally:
                await redisurl.close(redis)
            assert worker.returncode is None
            twice = {call: n for call, n in counts.items() if n > 1}
            assert not twice, twice
            print(f"promoted in {promoted_s:.1f} s; {len(accepted)} of {len(during) + len(after)} accepted, "
                  f"{sum(r.status == 503 for r in during)} answered 503")


async def test_a_webhook_no_replica_confirms_gets_503_and_its_repeat_200_once_one_does(
        group: SentinelGroup) -> None:
    """ACK_REPLICAS=1 with every replica frozen (SIGSTOP): the primary runs the intake, but WAIT counts no
    replica within ACK_TIMEOUT_MS, so the answer is 503 `queue_not_replicated` (Wavix, or reconciliation,
    sends it again). With the replicas back, the same webhook gets 200: it is recognised, and now replicated."""
    sandbox = Sandbox(SandboxConfig(seed=62, transcript_share=0.0))
    settings = Settings.from_env({"REDIS_URL": group.url, "WEBHOOK_TOKENS": TOKEN, "ACK_REPLICAS": "1",
                                  "ACK_TIMEOUT_MS": "200"})
    call = sandbox.place(1)
    replicas = [n for n in group.nodes if n.port != group.primary_port()]
    async with AsyncTestClient(app=create_app(settings)) as receiver:
        assert (await receiver.get("/readyz")).status_code == 200
        for node in replicas:
            assert node.process is not None
            node.process.send_signal(signal.SIGSTOP)
        try:
            refused = await send_webhooks(call, f"/webhooks/wavix/{TOKEN}", client=receiver)
        finally:
            for node in replicas:
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)
        accepted = await send_webhooks(call, f"/webhooks/wavix/{TOKEN}", client=receiver)
    assert [r.status for r in refused] == [503]
    assert [r.status for r in accepted] == [200]


async def test_the_console_and_the_cli_follow_the_primary_through_a_failover(group: SentinelGroup) -> None:
    """The console (a login is a session kept in Redis) and `wavix-events dlq list` work through the Sentinel
    URL, and again after the primary is killed: the same console process logs in on the promoted replica."""
    from tests.test_console_session import console, log_in, try_log_in
    from tests.test_startup_errors import wavix_events

    async with console(redis_url=group.url) as (client, settings):
        assert (await log_in(client)).status_code in (302, 303)
        assert (await client.get("/")).status_code == 200
        await asyncio.to_thread(group.kill_primary)
        client.cookies.clear()
        deadline = time.monotonic() + 30
        while (answer := await try_log_in(client)).status_code not in (302, 303):  # 503 until a primary answers
            assert answer.status_code == 503 and time.monotonic() < deadline, answer.status_code
            await asyncio.sleep(0.2)
        assert (await client.get("/")).status_code == 200
    listed = wavix_events("dlq", "list", REDIS_URL=group.url, DEAD_LETTER_STREAM=settings.dead_letter_stream)
    assert listed.returncode == 0, listed.stderr
    assert "0 of 0 dead letter(s)" in listed.stdout


async def test_a_call_a_dying_primary_acknowledged_but_never_replicated_comes_back_through_reconciliation(
        group: SentinelGroup, tmp_path: Path) -> None:
    """ACK_REPLICAS=0 (the default): the replicas frozen (SIGSTOP) and cut from the primary, a webhook
    answered 200 by the primary, the primary killed with -9 before any replica has the job. The promoted
    replica does not know the call (the loss is real), and the next reconciliation pass finds it in Wavix's
    list and queues it: the call ends in its one completed event, `found_by: reconcile`."""
    from workers.fetch.reconcile import reconcile_now
    from workers.runtime.settings import create_worker

    sandbox = Sandbox(SandboxConfig(seed=63, transcript_share=0.0))
    async with serve_sandbox(sandbox) as wavix_url:
        settings = Settings.from_env({"REDIS_URL": group.url, "WEBHOOK_TOKENS": TOKEN, "WAVIX_API_URL": wavix_url,
                                      "WAVIX_API_KEY": sandbox.config.api_key, "WORKER_HEALTH_PORT": "0",
                                      "TRANSCRIPT_POLL": "3600", "RECONCILE_INTERVAL": "0"})
        [call] = sandbox.place(1)
        primary = next(n for n in group.nodes if n.port == group.primary_port())
        replicas = [n for n in group.nodes if n is not primary]
        async with AsyncTestClient(app=create_app(settings)) as receiver:
            assert (await receiver.get("/readyz")).status_code == 200
            for node in replicas:
                node.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            with redis_client.Redis(port=primary.port) as direct:  # and their links cut: nothing more reaches
                direct.client_kill_filter(_type="slave")      # them, not even into their socket buffers
            try:
                [answer] = await send_webhooks([call], f"/webhooks/wavix/{TOKEN}", client=receiver,
                                               on_first_send=sandbox.mark_sent)
                assert answer.status == 200
                primary.kill()
            finally:
                for node in replicas:
                    node.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while group.primary_port() == primary.port:
            assert time.monotonic() < deadline, "no replica was promoted"
            await asyncio.sleep(0.1)
        redis = redisurl.client(group.url)
        try:
            deadline = time.monotonic() + 30
            while True:  # the promoted replica answers once Sentinel has reconfigured it
                try:
                    queued = await redis.zcard(settings.queue_name)
                    break
                except RedisError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
            assert queued == 0  # the acknowledged job was lost with the primary
            report = await reconcile_now(settings)
            assert report is not None and report.queued == 1
            worker = create_worker(settings, burst=True, poll_delay=0, handle_signals=False)
            try:
                await worker.main()
            finally:
                await worker.close()
            events = [decode_event(f[b"event"]) for _, f in await redis.xrange(settings.events_stream)]
        finally:
            await redisurl.close(redis)
    completed = [e for e in events if e.type == COMPLETED]
    assert [e.subject for e in completed] == [call.call_id]
    assert completed[0].data.found_by == "reconcile"
