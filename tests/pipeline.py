"""The whole pipeline in one event loop for end-to-end tests: sandbox, Slack stand-in, receiver, worker.

Everything is real but Wavix and Slack: the Litestar app (in-process ASGI), Redis, arq's Worker in burst
mode with our settings. Names are unique per pipeline, so tests never see each other's data, and everything
written under them (keys, streams, queue, arq's job and result keys) is deleted when the pipeline ends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
from arq.connections import ArqRedis
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from contract import redisurl
from contract.events import CloudEvent, decode_event
from contract.jobs import PROCESS_CALL, Receipt, job_deserializer, job_serializer
from contract.settings import Settings
from contract.webhooks import Kind
from sandbox.calls import SimCall
from sandbox.config import SandboxConfig
from sandbox.hooks import WebhookReceiver
from sandbox.server import serve as serve_sandbox
from sandbox.slack import SlackStandIn
from sandbox.slack import serve as serve_slack
from sandbox.state import Sandbox
from sandbox.webhooks import Result, send_webhooks
from service.app import create_app
from tests.conftest import REDIS_URL, TOKEN, forget
from tests.helpers.servers import free_port
from workers.alert.outbox import dispatch_pending
from workers.alert.rules import DeliveryPolicy
from workers.alert.slack import sender_for
from workers.operate.dlq import replay
from workers.runtime.settings import create_worker


@dataclass
class Pipeline:
    settings: Settings
    sandbox: Sandbox
    slack: SlackStandIn
    receiver: AsyncTestClient  # type: ignore[type-arg]
    redis: Redis

    async def place_and_send(self, count: int, **options: Any) -> tuple[list[SimCall], list[Result]]:
        calls = self.sandbox.place(count)
        results = await send_webhooks(
            calls, f"/webhooks/wavix/{TOKEN}", client=self.receiver, on_first_send=self.sandbox.mark_sent,
            rate=options.pop("rate", 500.0), **options,
        )
        return calls, results

    async def run_worker(self, **overrides: Any) -> Any:
        """Runs the real arq worker until the queue (deferred retries and polls included) is empty."""
        worker = create_worker(self.settings, burst=True, poll_delay=0, handle_signals=False, **overrides)
        try:
            await worker.main()
        finally:
            await worker.close()
        return worker

    async def flush_alerts(self) -> None:
        """Sends what the dispatcher has pending (the worker's own dispatcher stops with it)."""
        import httpx

        async with httpx.AsyncClient() as http:
            sender = sender_for(http, webhook_url=self.settings.slack_webhook_url)
            assert sender is not None
            await dispatch_pending(
                self.redis, sender, digest_threshold=self.settings.alert_digest_threshold,
                dead_letter_stream=self.settings.dead_letter_stream,
                policy=DeliveryPolicy(prefix=self.settings.key_prefix),
            )

    async def rerun_call(self, call_id: str) -> None:
        """Queues process_call for a call again under a fresh job id, as arq would re-run a crashed job."""
        receipt = Receipt(kind=Kind.POST_CALL, call_id=call_id, event="", received_at_ms=int(time.time() * 1000),
                          body=b"{}")
        job_id = f"{self.settings.key_prefix}rerun:{uuid.uuid4().hex}"  # under the prefix: cleaned up with it
        await self.arq().enqueue_job(PROCESS_CALL, receipt, _job_id=job_id, _queue_name=self.settings.queue_name)

    def arq(self) -> ArqRedis:
        return ArqRedis(connection_pool=self.redis.connection_pool, job_serializer=job_serializer,
                        job_deserializer=job_deserializer)

    async def replay(self, entry_id: str) -> str:
        return await replay(self.arq(), self.settings.dead_letter_stream, entry_id,
                            queue_name=self.settings.queue_name, key_prefix=self.settings.key_prefix)

    async def with_settings(self, **env: str) -> Pipeline:
        """The same pipeline with some settings changed (e.g. an operator fixing a key)."""
        changed = msgspec.structs.replace(self.settings, **{k.lower(): v for k, v in env.items()})
        return Pipeline(changed, self.sandbox, self.slack, self.receiver, self.redis)

    def env(self) -> dict[str, str]:
        """The settings as the environment of a role started as a process."""
        return {f.encode_name: _text(getattr(self.settings, f.name)) for f in msgspec.structs.fields(Settings)}

    async def events(self) -> list[CloudEvent]:
        return [decode_event(fields[b"event"]) for _, fields in await self.redis.xrange(self.settings.events_stream)]

    async def dead_letters(self) -> list[dict[bytes, bytes]]:
        return [fields for _, fields in await self.redis.xrange(self.settings.dead_letter_stream)]


@asynccontextmanager
async def pipeline(config: SandboxConfig, **env: str) -> AsyncIterator[Pipeline]:
    sandbox = Sandbox(config)
    slack = SlackStandIn()
    run = uuid.uuid4().hex
    async with serve_sandbox(sandbox) as wavix_url, serve_slack(slack) as slack_url:
        settings = Settings.from_env({
            "REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": f"test:queue:{run}",
            "KEY_PREFIX": f"test:{run}:", "EVENTS_STREAM": f"test:events:{run}",
            "DEAD_LETTER_STREAM": f"test:dead:{run}",
            "WAVIX_API_URL": wavix_url, "WAVIX_API_KEY": config.api_key,
            "SLACK_WEBHOOK_URL": f"{slack_url}/services/T000/B000/XXXX", "WORKER_HEALTH_PORT": "0",
            "TRANSCRIPT_POLL": "1", "TRANSCRIPT_WAIT": "6", **env,
        })
        redis = redisurl.client(settings.redis_url)
        try:
            async with AsyncTestClient(app=create_app(settings)) as receiver:
                yield Pipeline(settings, sandbox, slack, receiver, redis)
        finally:
            await redisurl.close(redis)
            forget([settings.key_prefix, settings.queue_name],
                   [settings.events_stream, settings.dead_letter_stream, settings.queue_name], url=settings.redis_url)


def _text(value: object) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


def by_type(events: Sequence[CloudEvent], event_type: str) -> dict[str, list[CloudEvent]]:
    out: dict[str, list[CloudEvent]] = {}
    for event in events:
        if event.type == event_type:
            out.setdefault(event.subject, []).append(event)
    return out


@asynccontextmanager
async def routed(
    tmp_path: Path, receiver: WebhookReceiver, crm: str = "", *, seed: int = 9, **env: str
) -> AsyncIterator[Pipeline]:
    """A pipeline whose routing file sends every event to its own Redis stream (`events`) and to `receiver`
    (`crm`); `crm` adds YAML lines to that destination (a schedule, a rate)."""
    await receiver.start()
    stream = f"test:events:{uuid.uuid4().hex}"
    routing = tmp_path / "sinks.yaml"
    routing.write_text(
        "destinations:\n"
        f"  - name: events\n    url: {REDIS_URL}?stream={stream}\n"
        f"  - name: crm\n    url: http://127.0.0.1:{receiver.port}/hooks\n    secret: {receiver.secret}\n{crm}"
    )
    try:
        async with pipeline(SandboxConfig(seed=seed, transcript_share=0.0), SINKS_CONFIG=str(routing),
                            EVENTS_STREAM=stream, **env) as p:
            yield p
    finally:
        await receiver.stop()


@asynccontextmanager
async def worker_process(p: Pipeline, log: Path, within_s: float = 30.0) -> AsyncIterator[None]:
    """A real `wavix-events worker` process on the pipeline's settings (not in burst mode: retries are waited for
    as they come), used once its health port answers, stopped with SIGTERM; its log goes to `log`."""
    port = free_port()
    env = {**os.environ, **p.env(), "WORKER_HEALTH_PORT": str(port)}
    with log.open("wb") as sink:
        worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "wavix_events.cli", "worker", env=env,
                                                      stdout=asyncio.subprocess.DEVNULL, stderr=sink)
        try:
            async with httpx.AsyncClient() as http:
                deadline = time.monotonic() + within_s
                while not await _healthy(http, f"http://127.0.0.1:{port}/healthz"):
                    assert worker.returncode is None, log.read_text()[-2000:]
                    assert time.monotonic() < deadline, "the worker did not start"
                    await asyncio.sleep(0.05)
            yield
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.wait(), 40)


async def _healthy(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url, timeout=1.0)).status_code == 200
    except httpx.TransportError:
        return False
