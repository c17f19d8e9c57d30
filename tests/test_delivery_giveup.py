"""A `deliver` job that cannot succeed ends in a dead letter with its reason, never in a silently failed job.

End to end with the real arq worker (tests/pipeline.py): a signed-webhook destination that wants only
`wavix.call.completed` events, one call.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from contract.jobs import DELIVER
from sandbox.config import SandboxConfig
from tests.helpers.sinks import SECRET, WebhookReceiver
from tests.pipeline import Pipeline, pipeline


@asynccontextmanager
async def completed_to(
    tmp_path: Path, receiver: WebhookReceiver, retry: str = "", **env: str
) -> AsyncIterator[Pipeline]:
    await receiver.start()
    routing = tmp_path / "sinks.yaml"
    routing.write_text(
        "destinations:\n"
        f"  - name: crm\n    url: http://127.0.0.1:{receiver.port}/hooks\n    secret: {SECRET}\n"
        "    filter:\n      types: [wavix.call.completed]\n" + (f"    retry: {retry}\n" if retry else "")
    )
    try:
        async with pipeline(SandboxConfig(seed=4, transcript_share=0.0), SINKS_CONFIG=str(routing),
                            EVENTS_STREAM=f"test:events:{uuid.uuid4().hex}", **env) as p:
            yield p
            keys = [k async for k in p.redis.scan_iter(match=f"{p.settings.key_prefix}*")]
            if keys:
                await p.redis.delete(*keys)
    finally:
        await receiver.stop()


async def test_a_permanent_answer_during_a_retry_is_dead_lettered(tmp_path: Path) -> None:
    """503 on the inline attempt, then 410 on the `deliver` job's retry: one dead letter of kind `deliver`
    whose reason names the 410, and no third request."""
    receiver = WebhookReceiver(script=[503], status=410)
    async with completed_to(tmp_path, receiver) as p:
        calls, _ = await p.place_and_send(1)
        await p.run_worker()
        letters = await p.dead_letters()
        assert [f[b"kind"].decode() for f in letters] == [DELIVER]
        assert b"410" in letters[0][b"reason"] and letters[0][b"call_id"].decode() == calls[0].call_id
        assert len(receiver.requests) == 2


async def test_a_delivery_after_its_last_transient_try_is_dead_lettered(tmp_path: Path) -> None:
    """A destination answering 503 every time: after its schedule's last try (three waits: four tries) the
    delivery is dead-lettered with the reason saying it gave up, instead of the job failing without a letter."""
    receiver = WebhookReceiver(status=503)
    async with completed_to(tmp_path, receiver, retry="{schedule: [50ms, 50ms, 50ms]}") as p:
        await p.place_and_send(1)
        await p.run_worker()
        letters = await p.dead_letters()
        assert [f[b"kind"].decode() for f in letters] == [DELIVER]
        assert b"503" in letters[0][b"reason"] and b"gave up after 4 tries" in letters[0][b"reason"]
        assert len(receiver.requests) == 4
