"""SIGTERM during load: the worker process stops, in-flight calls finish or go back to the queue, none is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from contract.events import COMPLETED
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from tests.pipeline import by_type, pipeline


async def test_sigterm_under_load_loses_no_call():
    """A worker stopped mid-load (some jobs done, some in flight past JOB_COMPLETION_WAIT) leaves every call
    to be finished by the next worker: each call ends with exactly one completed event, no dead letter."""
    slow = SandboxConfig(seed=31, transcript_share=0.0, faults=Faults(latency_s=1.5))
    async with pipeline(slow, JOB_COMPLETION_WAIT="1", WORKER_CONCURRENCY="8") as p:
        calls, _ = await p.place_and_send(40)
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wavix_events.cli", "worker", env={**os.environ, **p.env()},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60  # a bound only: the signal goes as soon as the first call is done
        while not (done_before := len(by_type(await p.events(), COMPLETED))):  # started, others in flight
            assert loop.time() < deadline and worker.returncode is None, "the worker never finished a call"
            await asyncio.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(worker.communicate(), 30)
        assert worker.returncode == 0, stderr.decode()[-2000:]
        assert 0 < done_before < len(calls), "the signal should arrive mid-load"
        assert b"cancelled, will be run again" in stderr or b"jobs complete" in stderr

        p.sandbox.set_faults(Faults())
        await p.run_worker()
        completed = by_type(await p.events(), COMPLETED)
        assert sorted(completed) == sorted(c.call_id for c in calls)
        assert all(len(events) == 1 for events in completed.values())
        assert await p.dead_letters() == []
