"""The two job endings of issue #11 that no other test reaches: a dead letter that cannot be written, and a
job re-run past arq's try limit. Either way the call ends in its dead letter, never in a job arq dropped.

End to end with the real arq worker (tests/pipeline.py) and a wrong Wavix key, so every call's CDR fetch
is refused (401) and its job is dead-lettered on the first try.
"""

from __future__ import annotations

import asyncio
import time

from arq.constants import retry_key_prefix

from contract.events import COMPLETED
from contract.jobs import PROCESS_CALL
from sandbox.config import SandboxConfig
from tests.pipeline import Pipeline, by_type, pipeline
from workers import process


async def _queued_job(p: Pipeline) -> str:
    [job_id] = [j.decode() for j in await p.redis.zrange(p.settings.queue_name, 0, -1)]
    return job_id


async def test_a_dead_letter_that_cannot_be_written_retries_the_job_until_it_can(monkeypatch) -> None:
    """The dead-letter stream's key holds a string (an operator's mistake): XADD fails with WRONGTYPE. The job
    is retried, not ended failed; once the key is fixed, the call's letter is written, with its 401."""
    monkeypatch.setattr(process, "DEAD_LETTER_RETRY_S", 0.1)
    async with pipeline(SandboxConfig(seed=8, transcript_share=0.0), WAVIX_API_KEY="wrong-key") as p:
        await p.redis.set(p.settings.dead_letter_stream, "not a stream")
        calls, _ = await p.place_and_send(1)
        tries = retry_key_prefix + await _queued_job(p)
        worker = asyncio.create_task(p.run_worker())
        deadline = time.monotonic() + 20
        while int(await p.redis.get(tries) or 0) < 3:  # run three times: each letter's write failed
            assert not worker.done(), "the worker stopped while the letter could not be written"
            assert time.monotonic() < deadline, "the job was not retried after its dead letter failed"
            await asyncio.sleep(0.05)
        await p.redis.delete(p.settings.dead_letter_stream)
        await asyncio.wait_for(worker, 20)

        letters = await p.dead_letters()
        assert [(f[b"kind"], f[b"call_id"].decode()) for f in letters] == [(PROCESS_CALL.encode(), calls[0].call_id)]
        assert b"401" in letters[0][b"reason"]
        assert await p.redis.zcard(p.settings.queue_name) == 0


async def test_a_job_rerun_past_the_try_limit_is_dead_lettered_not_dropped() -> None:
    """A call's job that crashes and shutdowns re-ran `TRY_LIMIT` times (arq counts every start): its next
    start writes its dead letter, naming the count, without fetching again; arq never drops it unrun."""
    async with pipeline(SandboxConfig(seed=8, transcript_share=0.0)) as p:
        calls, _ = await p.place_and_send(1)
        await p.redis.set(retry_key_prefix + await _queued_job(p), process.TRY_LIMIT, ex=3600)
        await p.run_worker()

        letters = await p.dead_letters()
        assert [(f[b"kind"], f[b"call_id"].decode()) for f in letters] == [(PROCESS_CALL.encode(), calls[0].call_id)]
        runs = process.TRY_LIMIT + 1
        assert letters[0][b"reason"].startswith(f"too_many_tries: run {runs} times".encode())
        assert int(letters[0][b"attempts"]) == runs
        assert not any("/v1/cdr" in request for request in p.sandbox.requests), p.sandbox.requests
        assert by_type(await p.events(), COMPLETED) == {}
