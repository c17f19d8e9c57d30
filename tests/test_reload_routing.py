"""SIGHUP reloads the routing file in a running worker process, and only a valid file replaces the routing.

The real `wavix-events worker` process (not burst), fed by the sandbox and the real receiver (tests/pipeline.py).
Each step waits for its log line or its event (with a generous deadline) and then asserts on what it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from contract.events import COMPLETED, decode_event
from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL
from tests.pipeline import Pipeline, pipeline


def routing(stream: str) -> str:
    return ("destinations:\n  - name: events\n"
            f"    url: {REDIS_URL}?stream={stream}\n    filter:\n      types: [{COMPLETED}]\n")


async def wait_for(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


async def subjects(p: Pipeline, stream: str) -> set[str]:
    return {decode_event(f[b"event"]).subject for _, f in await p.redis.xrange(stream)}


async def test_a_bad_routing_file_on_sighup_keeps_the_old_routing_and_a_good_one_takes_effect(tmp_path: Path) -> None:
    """Rewritten to something invalid, the file is refused on SIGHUP with a log line naming its line, and the
    next call still goes to the old destination; rewritten validly, the next SIGHUP applies it and the next
    call goes to the new destination only."""
    sinks = tmp_path / "sinks.yaml"
    sinks.write_text(routing("test:unused"))  # the pipeline checks it; the real names need the run's prefix
    async with pipeline(SandboxConfig(seed=2, transcript_share=0.0), SINKS_CONFIG=str(sinks)) as p:
        old, new = f"{p.settings.key_prefix}old", f"{p.settings.key_prefix}new"
        sinks.write_text(routing(old))
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wavix_events.cli", "worker", env={**os.environ, **p.env()},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        lines: list[dict[str, object]] = []

        async def read_logs() -> None:
            assert worker.stderr is not None
            async for raw in worker.stderr:
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(raw))

        reader = asyncio.create_task(read_logs())

        async def logged(event: str) -> bool:
            return any(line.get("event") == event for line in lines)

        async def call_reaches(stream: str) -> str:
            calls, _ = await p.place_and_send(1)
            assert await wait_for(lambda: _has(p, stream, calls[0].call_id)), f"call not in {stream}"
            return calls[0].call_id

        try:
            assert await wait_for(lambda: logged("worker.started")), lines[-5:]
            started = next(line for line in lines if line.get("event") == "worker.started")
            assert started["loop"] == "uvloop", started  # `wavix-events worker` runs on uvloop, as the receiver
            first = await call_reaches(old)

            sinks.write_text(routing(old).replace("filter:", "filtre:"))
            worker.send_signal(signal.SIGHUP)
            assert await wait_for(lambda: logged("routing.reload_refused"))
            refused = next(line for line in lines if line.get("event") == "routing.reload_refused")
            assert str(refused["reason"]).startswith('sinks.yaml:4: destination "events": unknown field "filtre"')
            assert refused["kept"] == "events"
            second = await call_reaches(old)
            assert worker.returncode is None, "a bad file must not stop the worker"

            sinks.write_text(routing(new))
            worker.send_signal(signal.SIGHUP)
            assert await wait_for(lambda: logged("routing.reloaded"))
            third = await call_reaches(new)
            assert await subjects(p, old) == {first, second} and await subjects(p, new) == {third}
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.wait(), 30)
            await reader
            await p.redis.delete(old, new)


async def _has(p: Pipeline, stream: str, call_id: str) -> bool:
    return call_id in await subjects(p, stream)
