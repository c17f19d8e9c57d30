"""Bounded retention (issue #25): with short settings nothing is found past its life, and a dead letter carries no
more of its webhook than a replay reads. Real Redis and the real worker (tests/pipeline.py); the waits are on
conditions (a key gone), never sleeps of a guessed length."""

from __future__ import annotations

import asyncio
import time

import msgspec

from contract.jobs import PROCESS_CALL, Receipt
from contract.record import calls_key, record_key, summary_key
from sandbox.config import SandboxConfig
from tests.pipeline import pipeline
from workers import deadletter
from workers.deadletter import dead_letter
from workers.operate.dlq import replay
from workers.privacy.index import index_key


async def gone(check: object, *, within_s: float) -> bool:
    """Polls `check()` (an async callable answering True once the thing is gone) until it is, or `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


async def test_records_end_with_record_retention() -> None:
    """RECORD_RETENTION=9 (and WEBHOOK_DEDUP_TTL=9): a call's record, its summary, its place in the console's index
    and the number index live at most 9 s, and after that a scan finds none of them."""
    async with pipeline(SandboxConfig(seed=5, transcript_share=0.0), RECORD_RETENTION="9",
                        WEBHOOK_DEDUP_TTL="9") as p:
        calls, _ = await p.place_and_send(3)
        await p.run_worker()
        prefix = p.settings.key_prefix
        keys = [k for c in calls for k in (record_key(prefix, c.call_id), summary_key(prefix, c.call_id))]
        keys += [calls_key(prefix)]
        keys += [k.decode() async for k in p.redis.scan_iter(match=index_key(prefix, "*"))]
        ttls = {k: ttl for k in keys if (ttl := await p.redis.ttl(k)) != -2}  # -2: ended already
        assert any(":number:" in k for k in ttls) and any(":record:" in k for k in ttls), ttls
        assert all(0 < ttl <= 9 for ttl in ttls.values()), ttls

        async def none_left() -> bool:
            return not await p.redis.exists(*keys)

        assert await gone(none_left, within_s=11)


async def test_dead_letters_end_with_dead_letter_retention() -> None:
    """DEAD_LETTER_RETENTION=1: the stream lives at most 1 s past its newest letter; a letter written after an old
    one's life trims it; a replay of a letter past its life is refused, with the retention named."""
    async with pipeline(SandboxConfig(seed=5), DEAD_LETTER_RETENTION="1") as p:
        stream, life = p.settings.dead_letter_stream, p.settings.dead_letter_retention
        old = await dead_letter(p.redis, stream, kind="slack_alert", reason="r", attempts=1, payload=b"", call_id="a",
                                retention_s=life)
        assert 0 < await p.redis.ttl(stream) <= 1

        async def past() -> bool:
            return deadletter.past_retention(old, life)

        assert await gone(past, within_s=3)
        try:
            await replay(p.arq(), stream, old, queue_name=p.settings.queue_name, key_prefix=p.settings.key_prefix,
                         retention_s=life)
            raise AssertionError("a letter past retention was replayed")
        except KeyError as e:
            assert "retention (0 days)" in str(e) or "retention" in str(e)
        new = await dead_letter(p.redis, stream, kind="slack_alert", reason="r", attempts=1, payload=b"", call_id="b",
                                retention_s=life)
        assert [i.decode() for i, _ in await p.redis.xrange(stream)] == [new]


async def test_a_calls_letter_keeps_no_number_and_still_replays() -> None:
    """A process_call dead-lettered by the worker (Wavix refuses the key: 401) keeps, of its webhook, only what a
    replay reads (direction, who answered): neither party's number; replayed, the job runs with those facts."""
    async with pipeline(SandboxConfig(seed=5), WAVIX_API_KEY="wrong-key") as p:
        calls, _ = await p.place_and_send(2)
        await p.run_worker()
        letters = [f for f in await p.dead_letters() if f[b"kind"].decode() == PROCESS_CALL]
        assert len(letters) == 2
        for fields in letters:
            receipt = msgspec.convert(msgspec.msgpack.decode(fields[b"payload"]), Receipt)
            call = next(c for c in calls if c.call_id == receipt.call_id)
            for number in (call.from_, call.to):
                assert number.lstrip("+")[-9:].encode() not in fields[b"payload"]
            assert msgspec.json.decode(receipt.body).get("direction") == call.direction
