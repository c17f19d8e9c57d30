"""`wavix-events forget --call`, the tombstone and the command's refusals: real Redis and worker (tests/pipeline.py),
the default destination (a Redis Stream) only. The whole erasure over every destination kind is
tests/test_erasure.py."""

from __future__ import annotations

import uuid

from arq.constants import in_progress_key_prefix

from contract import events as ev
from contract.intake import call_job_id
from contract.record import record_key, summary_key
from contract.webhooks import webhooks_key
from sandbox.config import SandboxConfig
from tests.pipeline import pipeline
from tests.test_erasure import forget
from workers.deliver import eventlog
from workers.fetch.listed import ListedCall, ListedIntake
from workers.privacy import tombstone


async def test_forget_one_call_then_again() -> None:
    """`forget --call`: the call's keys and event log entries go, the stream destination loses its entries and
    gets `wavix.call.erased` once; the other calls stay; run again, it erases nothing and sends nothing."""
    async with pipeline(SandboxConfig(seed=2, transcript_share=0.0)) as p:
        calls, _ = await p.place_and_send(3)
        await p.run_worker()
        target, others = calls[0].call_id, [c.call_id for c in calls[1:]]
        prefix = p.settings.key_prefix
        status, out = await forget(p, "--call", target)
        assert status == 0 and f"erased 1 call(s): {target}" in out, out
        await p.run_worker()
        assert not await p.redis.exists(webhooks_key(prefix, target), record_key(prefix, target) + "x",
                                         summary_key(prefix, target))
        logged = [f[b"event"] for _, f in await p.redis.xrange(eventlog.key(prefix))]
        assert not any(target.encode() in body for body in logged)
        events = await p.events()
        assert [e.type for e in events if e.subject == target] == [ev.ERASED]
        assert {e.subject for e in events} >= set(others)
        assert await p.redis.exists(summary_key(prefix, others[0]))
        assert target in await tombstone.erased(p.redis, prefix, [target, *others])

        status, out = await forget(p, "--call", target)
        assert status == 0 and "erased 0 call(s)" in out, out
        await p.run_worker()
        assert [e.type for e in await p.events() if e.subject == target] == [ev.ERASED]


async def test_a_busy_call_is_left_whole_and_reported() -> None:
    """A call whose job runs (arq's in-progress mark) is not erased: the command names it and exits 1."""
    async with pipeline(SandboxConfig(seed=2, transcript_share=0.0)) as p:
        calls, _ = await p.place_and_send(1)
        await p.run_worker()
        call_id, prefix = calls[0].call_id, p.settings.key_prefix
        await p.redis.set(in_progress_key_prefix + call_job_id(prefix, call_id), b"1", ex=30)
        status, out = await forget(p, "--call", call_id)
        assert status == 1 and "busy" in out and call_id in out, out
        assert await p.redis.exists(summary_key(prefix, call_id))
        assert not await tombstone.erased(p.redis, prefix, [call_id])


async def test_listing_never_imports_an_erased_call_again() -> None:
    """Reconciliation's and backfill's intake takes a tombstoned call for one seen before: not queued, and counted
    as seen by a dry run; the others are offered as usual."""
    async with pipeline(SandboxConfig(seed=2)) as p:
        prefix = p.settings.key_prefix
        erased, fresh = str(uuid.uuid4()), str(uuid.uuid4())
        await tombstone.bury(p.redis, prefix, [erased])
        calls = [ListedCall(c, "answered", None, None, b'{"uuid": "%s"}' % c.encode()) for c in (erased, fresh)]
        intake = ListedIntake.from_settings(p.redis, p.settings)
        assert await intake.seen(calls) == [True, False]
        assert await intake.offer(calls, source="backfill", listed_type="placed") == [False, True]
        assert 0 < await p.redis.ttl(tombstone.tombstone_key(prefix)) <= tombstone.TOMBSTONE_S


async def test_forget_refuses_what_it_cannot_mean() -> None:
    """A number that is not E.164, or --from with --call, is a usage error (exit 2) that changes nothing."""
    async with pipeline(SandboxConfig(seed=2)) as p:
        status, out = await forget(p, "--number", "call me maybe")
        assert status == 2 and "E.164" in out
        status, out = await forget(p, "--call", "c-1", "--from", "2026-01-01")
        assert status == 2 and "--number" in out
        assert not await p.redis.exists(tombstone.audit_key(p.settings.key_prefix))
