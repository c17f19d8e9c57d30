"""A confirmed delivery whose mark cannot be written at once is not sent again (issue #11, `make chaos`).

The one duplicate the per-destination chaos count found: a signed-webhook endpoint answered 2xx, and Redis
restarted before the worker wrote the ledger's "delivered" mark. The job failed, ran again once Redis was
back, found the attempt's lease still held, waited it out (45 s) and sent the event a second time.

Here a real `redis-server` (AOF on) is stopped by the endpoint itself, after it has recorded a POST and
before it answers, and started again 1.5 s later, under the real arq worker. Every event must reach the
endpoint exactly once, its mark must be in Redis soon after Redis is back (not when the lease runs out),
and no job that could send it again may be left in the queue.

The claim has the same hole the other way round (the first CI run of that fix caught it, 1 run in 8): Redis
ran the claim script, which took the lease, and the answer never came back (a connection reset). The job
failed, ran again, found its own lease and waited it out, 45 s. Here a proxy loses exactly that answer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from chaos.redis import PrivateRedis
from contract.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.hooks import Request, WebhookReceiver
from sandbox.server import serve as serve_sandbox
from sandbox.state import Sandbox
from sandbox.webhooks import send_webhooks
from service.app import create_app
from tests.conftest import REDIS_URL, TOKEN, forget
from tests.helpers.sinks import AnswerLoser
from workers.deliver.ledger import LEASE_S
from workers.runtime.settings import create_worker

CALLS = 6
OUTAGE_S = 1.5
SETTLED_WITHIN_S = 15.0  # after Redis is back; the lease the old code waited out is LEASE_S (45 s)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    with PrivateRedis(tmp_path / "redis") as server:
        yield server


@asynccontextmanager
async def _calls_delivered_to(endpoint: WebhookReceiver, tmp_path: Path, env: dict[str, str], calls: int,
                              worker_redis: str | None = None) -> AsyncIterator[tuple[Settings, Redis]]:
    """The real receiver and arq worker (Redis at env's REDIS_URL; the worker's at `worker_redis` when given)
    with `endpoint` as the one destination, `calls` webhooks accepted; yields the settings and a client of
    that Redis, the worker still running. (The receiver's own Redis is never a proxy in this event loop:
    Litestar's test client blocks the loop while the app answers.)"""
    await endpoint.start()
    routing = tmp_path / "sinks.yaml"
    routing.write_text(f"destinations:\n  - name: crm\n    url: http://127.0.0.1:{endpoint.port}/hooks\n"
                       f"    secret: {endpoint.secret}\n")
    sandbox = Sandbox(SandboxConfig(seed=61, transcript_share=0.0))
    async with serve_sandbox(sandbox) as wavix_url:
        settings = Settings.from_env({
            "WEBHOOK_TOKENS": TOKEN, "WAVIX_API_URL": wavix_url, "WAVIX_API_KEY": sandbox.config.api_key,
            "WORKER_HEALTH_PORT": "0", "SINKS_CONFIG": str(routing), "TRANSCRIPT_POLL": "3600", **env,
        })
        worker_settings = msgspec.structs.replace(settings, redis_url=worker_redis or settings.redis_url)
        worker = create_worker(worker_settings, handle_signals=False, poll_delay=0.05)
        running = asyncio.create_task(worker.main())
        redis = Redis.from_url(settings.redis_url)
        try:
            async with AsyncTestClient(app=create_app(settings)) as receiver:
                results = await send_webhooks(sandbox.place(calls), f"/webhooks/wavix/{TOKEN}", client=receiver,
                                              rate=50, on_first_send=sandbox.mark_sent)
            assert [r.status for r in results] == [200] * calls
            yield settings, redis
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await worker.close()
            await redis.aclose()
            await endpoint.stop()


async def _wait_settled(redis: Redis, settings: Settings, endpoint: WebhookReceiver, calls: int,
                        within_s: float) -> None:
    """Waits up to `within_s` for every call's event at the endpoint, each once, its mark written and no job
    left that could send one again; fails saying what is missing."""

    async def settled() -> bool:
        if len({r.headers["webhook-id"] for r in endpoint.received}) < calls:
            return False
        try:
            return all(await _marks(redis, settings, endpoint)) and not await _pending(redis, settings)
        except OSError:
            return False

    deadline = time.monotonic() + within_s
    while not await settled() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    sent = Counter(r.headers["webhook-id"] for r in endpoint.received)
    marks = await _marks(redis, settings, endpoint)
    queued = await _pending(redis, settings)
    assert await settled(), f"not settled: sent {sent}, marks {marks}, still queued {queued}"
    assert len(sent) == calls and set(sent.values()) == {1}, sent


async def test_a_delivery_confirmed_while_redis_restarts_is_sent_once(private_redis: PrivateRedis,
                                                                     tmp_path: Path) -> None:
    assert SETTLED_WITHIN_S < LEASE_S
    endpoint = WebhookReceiver(secret="whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    back_at: list[float] = []
    restarting: list[asyncio.Task[None]] = []

    async def restart_redis_once(request: Request) -> None:
        """The first POST: Redis goes away after the endpoint has the event and before it says 2xx."""
        if back_at or endpoint.received[-1] is not request:
            return
        back_at.append(0.0)
        await asyncio.to_thread(private_redis.stop)

        async def start_later() -> None:
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(private_redis.start)
            back_at[0] = time.monotonic()

        restarting.append(asyncio.create_task(start_later()))

    endpoint.before_answer = restart_redis_once
    try:
        async with _calls_delivered_to(endpoint, tmp_path, {"REDIS_URL": private_redis.url}, CALLS) as (settings,
                                                                                                       redis):
            deadline = time.monotonic() + 30
            while not (back_at and back_at[0]) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert back_at and back_at[0], "the endpoint never saw a POST, so Redis was never restarted"
            await _wait_settled(redis, settings, endpoint, CALLS, SETTLED_WITHIN_S)
    finally:
        await asyncio.gather(*restarting, return_exceptions=True)


async def test_a_claim_whose_answer_was_lost_does_not_wait_out_its_own_lease(tmp_path: Path) -> None:
    """Redis runs the first claim (the lease is taken) and its answer is lost: the event still goes out once,
    well before the lease (LEASE_S) could run out, and no `deliver` job is left waiting for it."""
    redis_at = urlsplit(REDIS_URL)
    proxy = await AnswerLoser(redis_at.hostname or "127.0.0.1", redis_at.port or 6379, b"delivering:").start()
    run = uuid.uuid4().hex
    env = {"REDIS_URL": REDIS_URL, "KEY_PREFIX": f"test:{run}:", "QUEUE_NAME": f"test:queue:{run}",
           "DEAD_LETTER_STREAM": f"test:dead:{run}"}
    endpoint = WebhookReceiver(secret="whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    try:
        async with _calls_delivered_to(endpoint, tmp_path, env, 1,
                                       worker_redis=f"redis://127.0.0.1:{proxy.port}{redis_at.path}") as (settings,
                                                                                                          redis):
            await _wait_settled(redis, settings, endpoint, 1, SETTLED_WITHIN_S)
            assert proxy.lost, "no claim's answer was lost: the test did not test anything"
    finally:
        await proxy.cut()
        forget([env["KEY_PREFIX"]], [env["QUEUE_NAME"], env["DEAD_LETTER_STREAM"]])


async def _pending(redis: Redis, settings: Settings) -> list[bytes]:
    """Queued jobs that could still send an event: everything but the transcript polls (due in an hour)."""
    return [j for j in await redis.zrange(settings.queue_name, 0, -1) if b":transcript:" not in j]


async def _marks(redis: Redis, settings: Settings, endpoint: WebhookReceiver) -> list[int]:
    """The ledger's delivered mark of every event the endpoint received (1: written)."""
    ids = [msgspec.json.decode(r.body)["id"] for r in endpoint.received]
    return [await redis.exists(f"{settings.key_prefix}delivered:{event_id}:crm") for event_id in ids]
