"""Erasure end to end (issue #25): `wavix-events forget --number` over a pipeline with one destination of every kind
(Redis Stream, RabbitMQ, NATS JetStream, signed webhook, PostgreSQL), everything real but Wavix (the sandbox).

After it, a scan of every Redis key of the run and of the PostgreSQL destination's tables finds neither the number
nor a sentence of its calls' transcripts; each destination's consumer received `wavix.call.erased` once per call;
a reconciliation pass over the same window (the dedup marks gone, as after their life) queues and publishes
nothing; a second run finds nothing; the audit line says who and how many, with no number."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from contract import events as ev
from contract.intake import seen_key
from sandbox.calls import SimCall
from sandbox.config import SandboxConfig
from sandbox.webhooks import send_webhooks
from tests.conftest import TOKEN
from tests.helpers.sinks import HARNESSES, Harness
from tests.pipeline import Pipeline, pipeline
from tests.test_reconcile import one_pass
from workers.fetch.wavix import WavixClient, create_http_client
from workers.privacy import tombstone

CONFIG = SandboxConfig(seed=11, transcript_share=1.0, transcript_failed_share=0.0, machine_share=0.0)


@asynccontextmanager
async def every_kind(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, dict[str, Harness]]]:
    """A pipeline whose routing file names one destination of each kind, each read back by its harness."""
    async with AsyncExitStack() as stack:
        harnesses: dict[str, Harness] = {}
        for kind, cls in HARNESSES.items():
            h = cls()
            await h.setup()
            stack.push_async_callback(h.cleanup)
            harnesses[kind] = h
        lines = ["destinations:"]
        for kind, h in harnesses.items():
            lines.append(f"  - name: {kind}\n    url: {h.url()}")
            if h.secret:
                lines.append(f"    secret: {h.secret}")
        routing = tmp_path / "sinks.yaml"
        routing.write_text("\n".join(lines) + "\n")
        p = await stack.enter_async_context(pipeline(CONFIG, SINKS_CONFIG=str(routing), RECONCILE_INTERVAL="0"))
        yield p, harnesses


async def place_twins(p: Pipeline) -> tuple[list[SimCall], list[SimCall], str]:
    """Six calls, and a seventh with the same remote number as a transcribed one: (erased, kept, number)."""
    calls, _ = await p.place_and_send(6)
    first = next(c for c in calls if c.transcript is not None and c.transcript.turns)
    remote = first.to if first.direction == "outbound" else first.from_
    twin = msgspec.structs.replace(first, call_id=str(uuid.uuid4()),
                                   transcript=msgspec.structs.replace(first.transcript, uuid=str(uuid.uuid4())))
    p.sandbox.add([twin])
    await send_webhooks([twin], f"/webhooks/wavix/{TOKEN}", client=p.receiver, on_first_send=p.sandbox.mark_sent)
    return [first, twin], [c for c in calls if c is not first], "+" + remote.lstrip("+")


async def everything_in_redis(p: Pipeline, extra: list[str]) -> dict[str, bytes]:
    """Every key of the run (prefix, queue, streams, arq's keys of our jobs) with its whole value as bytes."""
    prefix = p.settings.key_prefix
    patterns = (f"{prefix}*", f"arq:*{prefix}*", p.settings.queue_name, p.settings.dead_letter_stream, *extra)
    keys = {k for pattern in patterns async for k in p.redis.scan_iter(match=pattern, count=10_000)}
    out: dict[str, bytes] = {}
    for key in keys:
        out[key.decode()] = await dump(p.redis, key)
    return out


async def dump(redis: Redis, key: bytes) -> bytes:
    kind = (await redis.type(key)).decode()
    if kind == "string":
        return await redis.get(key) or b""
    if kind == "list":
        return b"|".join(await redis.lrange(key, 0, -1))
    if kind == "hash":
        return b"|".join(k + b"=" + v for k, v in (await redis.hgetall(key)).items())  # type: ignore[misc]
    if kind == "set":
        return b"|".join(await redis.smembers(key))  # type: ignore[misc]
    if kind == "zset":
        return b"|".join(await redis.zrange(key, 0, -1))
    if kind == "stream":
        return b"|".join(b"|".join(k + b"=" + v for k, v in f.items()) for _, f in await redis.xrange(key))
    return b""


def traces(blob: bytes, number: str, sentences: set[str]) -> list[str]:
    digits = re.sub(r"\D", "", number).encode()
    found = [number] if re.search(rb"(?<!\d)" + digits + rb"(?!\d)", blob) else []
    return found + [s for s in sentences if s.encode() in blob or msgspec.json.encode(s)[1:-1] in blob]


async def postgres_text(h: Harness) -> str:
    conn = h.conn  # type: ignore[attr-defined]
    rows = []
    for table in ("calls", "call_transcripts", "events"):
        rows += await conn.fetch(f"SELECT * FROM {h.schema}.{table}")  # type: ignore[attr-defined]
    return " ".join(str(dict(r)) for r in rows)


async def forget(p: Pipeline, *args: str) -> tuple[int, str]:
    """`wavix-events forget ...` as an operator runs it: a process of its own with the deployment's settings."""
    env = {**os.environ, **p.env()}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wavix_events.cli", "forget", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def erased_copies(received: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in received:
        if r.type.endswith(ev.ERASED):
            call_id = ev.decode_event(r.body).subject
            counts[call_id] = counts.get(call_id, 0) + 1
    return counts


async def test_forget_a_number_leaves_no_trace_and_tells_every_destination_once(tmp_path: Path) -> None:
    """The whole erasure: nothing of the number or its calls' transcripts in Redis or PostgreSQL, the other calls
    untouched, `wavix.call.erased` once per call at each destination, nothing imported again by reconciliation,
    an idempotent second run, and an audit line without the number."""
    async with every_kind(tmp_path) as (p, harnesses):
        erased, kept, number = await place_twins(p)
        await p.run_worker()
        gone = {c.call_id for c in erased}
        mine = {t.text for c in erased for t in (c.transcript.turns if c.transcript else ())}
        sentences = mine - {t.text for c in kept for t in (c.transcript.turns if c.transcript else ())}
        stream = harnesses["redis"].stream  # type: ignore[attr-defined]
        before = await everything_in_redis(p, [stream])
        assert any(traces(v, number, sentences) for v in before.values()) and sentences  # there was something

        status, out = await forget(p, "--number", number, "--dry-run")
        assert status == 0 and "would erase 2 call(s)" in out, out
        dry = await everything_in_redis(p, [stream])  # a dry run changes nothing (a pacing key may have ended)
        assert all(before.get(k) == v for k, v in dry.items()) and set(before) - set(dry) <= {
            k for k in before if ":slack:" in k}

        status, out = await forget(p, "--number", number, "--by", "dpo@example.com")
        assert status == 0 and "erased 2 call(s)" in out and number.lstrip("+") not in out, out
        await p.run_worker()

        after = await everything_in_redis(p, [stream])
        left = {k: traces(v, number, sentences) for k, v in after.items() if traces(v, number, sentences)}
        assert left == {}
        assert number.lstrip("+") not in await postgres_text(harnesses["postgres"])
        for kind, h in harnesses.items():
            got = await h.received(1)
            assert erased_copies(got) == dict.fromkeys(gone, 1), kind
            assert {ev.decode_event(r.body).subject for r in got} >= {c.call_id for c in kept}, kind

        counts = {kind: len(await h.read()) for kind, h in harnesses.items()}
        await p.redis.delete(*[seen_key(p.settings.key_prefix, f"call:{c}") for c in gone])  # as if expired
        http = create_http_client(p.settings, concurrency=4)
        try:
            report = await one_pass(p, WavixClient.from_settings(http, p.settings))
        finally:
            await http.aclose()
        assert report.queued == 0 and report.in_window >= len(gone)
        await p.run_worker()
        assert {kind: len(await h.read()) for kind, h in harnesses.items()} == counts

        status, out = await forget(p, "--number", number)
        assert status == 0 and "erased 0 call(s)" in out, out
        await p.run_worker()
        for h in harnesses.values():
            assert erased_copies(await h.read()) == dict.fromkeys(gone, 1)

        audit = [f for _, f in await p.redis.xrange(tombstone.audit_key(p.settings.key_prefix))]
        assert [a[b"calls"] for a in audit] == [b"2", b"0"] and audit[0][b"by"] == b"dpo@example.com"
        assert not any(number.lstrip("+").encode() in b"".join(a.values()) for a in audit)
