"""Backfill end to end: the sandbox's NDJSON export, real Redis, the real arq worker.

The sandbox dates its calls over three UTC days (SandboxConfig.start), so a backfill of that range streams
six (day, type) exports; the worker publishes what was queued. Each test pins one promise of the command:
idempotent, resumable, honest in a dry run, strict about its dates.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime

import pytest
from rich.console import Console

from sandbox.config import SandboxConfig
from tests.test_reconcile import FAST, assert_once_each, completed, reconciling
from wavix_events.cli import main as cli
from workers.fetch.backfill import Backfill, done_key, run, units
from workers.fetch.listed import ListedIntake
from workers.fetch.reconcile import LIST_TYPES

CONFIG = SandboxConfig(seed=51, start="2026-02-01T20:00:00Z", spacing_s=1800.0)  # 2026-02-01 .. 02-03
FIRST, LAST = date(2026, 2, 1), date(2026, 2, 3)


class Interrupted(Exception):
    """Stands for Ctrl-C or a crash in the middle of a run."""


def backfill(p, wavix, *, dry_run=False, progress=lambda n: None, last=LAST) -> Backfill:  # type: ignore[no-untyped-def]
    return Backfill(wavix, ListedIntake.from_settings(p.redis, p.settings), p.redis,
                    key=done_key(p.settings.key_prefix, FIRST, last), dry_run=dry_run, policy=FAST, progress=progress)


async def test_backfill_twice_publishes_each_call_once() -> None:
    """A first run queues every call of the range (found_by backfill, the sandbox's direction); a second run
    lists them all again, skips the finished days, queues nothing, and the worker publishes nothing new."""
    async with reconciling(CONFIG) as (p, wavix):
        calls = p.sandbox.place(100)
        todo = units(FIRST, LAST, LIST_TYPES)
        tally = await backfill(p, wavix).run(todo)
        assert (tally.listed, tally.queued, tally.seen, tally.failed, tally.days_done) == (100, 100, 0, 0, 6)
        await p.run_worker()
        assert_once_each(calls, await completed(p), {c.call_id: "backfill" for c in calls})
        again = await backfill(p, wavix).run(todo)
        assert (again.queued, again.days_skipped) == (0, 6)
        await p.redis.delete(done_key(p.settings.key_prefix, FIRST, LAST))  # forget progress: dedup still holds
        redo = await backfill(p, wavix).run(todo)
        assert (redo.listed, redo.seen, redo.queued) == (100, 100, 0)
        await p.run_worker()
        assert_once_each(calls, await completed(p), {c.call_id: "backfill" for c in calls})


async def test_interrupted_backfill_resumes_where_it_stopped() -> None:
    """Interrupted in its third (day, type) after that batch was queued, a rerun skips the two finished ones,
    redoes the third safely, finishes the rest: every call published once."""
    async with reconciling(CONFIG) as (p, wavix):
        calls = p.sandbox.place(100)
        batches = 0

        def crash_on_third(n: int) -> None:
            nonlocal batches
            batches += 1
            if batches == 3:
                raise Interrupted

        with pytest.raises(Interrupted):
            await backfill(p, wavix, progress=crash_on_third).run(units(FIRST, LAST, LIST_TYPES))
        assert await p.redis.scard(done_key(p.settings.key_prefix, FIRST, LAST)) == 2
        resumed = await backfill(p, wavix).run(units(FIRST, LAST, LIST_TYPES))
        assert resumed.days_skipped == 2 and resumed.days_done == 4 and resumed.seen > 0
        await p.run_worker()
        assert_once_each(calls, await completed(p), {c.call_id: "backfill" for c in calls})


async def test_dry_run_counts_and_writes_nothing() -> None:
    """A dry run counts seen and new calls with EXISTS only: nothing queued, no progress recorded."""
    async with reconciling(CONFIG) as (p, wavix):
        calls = p.sandbox.place(60)
        await backfill(p, wavix, last=FIRST).run(units(FIRST, FIRST, ("placed",)))  # some calls seen before
        seen = sum(c.date.startswith("2026-02-01") and c.type == "placed" for c in calls)
        before = await p.redis.zcard(p.settings.queue_name)
        tally = await backfill(p, wavix, dry_run=True).run(units(FIRST, LAST, LIST_TYPES))
        assert (tally.listed, tally.seen, tally.queued) == (60, seen, 60 - seen) and seen > 0
        assert await p.redis.zcard(p.settings.queue_name) == before
        assert not await p.redis.exists(done_key(p.settings.key_prefix, FIRST, LAST))


async def test_command_prints_a_summary_and_its_status() -> None:
    """`run` (the command's body) streams the range, shows its progress and closes with one summary line of
    listed / already seen / queued / failed; a second run over part of the range queues nothing."""
    async with reconciling(CONFIG) as (p, _):
        p.sandbox.place(40)
        out = io.StringIO()
        status = await asyncio.to_thread(run, p.settings, first="2026-02-01", last="2026-02-03",
                                         console=Console(file=out, width=200))
        assert status == 0, out.getvalue()
        assert "listed 40 · already seen 0 · queued 40 · failed 0" in out.getvalue()
        status = await asyncio.to_thread(run, p.settings, first="2026-02-01", last="2026-02-03", types="placed",
                                         console=Console(file=out, width=200))
        assert status == 0 and "queued 0" in out.getvalue().splitlines()[-1]


async def test_a_backfill_reaching_today_leaves_today_open_for_a_rerun() -> None:
    """Today's UTC day is not over: a backfill that reaches it queues today's calls but does not mark the day
    done, so a rerun later the same day queues the calls made since (and only those)."""
    today = datetime.now(UTC).date()
    async with reconciling(SandboxConfig(seed=52, start=f"{today.isoformat()}T00:00:00Z", spacing_s=1.0)) as (p, _):
        p.sandbox.place(10)
        out = io.StringIO()
        status = await asyncio.to_thread(run, p.settings, first=today.isoformat(), last=today.isoformat(),
                                         console=Console(file=out, width=200))
        assert status == 0 and "queued 10 ·" in out.getvalue().splitlines()[-1]
        p.sandbox.place(5)  # calls made later today
        status = await asyncio.to_thread(run, p.settings, first=today.isoformat(), last=today.isoformat(),
                                         console=Console(file=out, width=200))
        assert status == 0 and "already seen 10 · queued 5 ·" in out.getvalue().splitlines()[-1]


@pytest.mark.parametrize("first,last", [("2026-02-30", "2026-03-01"), ("yesterday", "2026-03-01"),
                                        ("2026-03-02", "2026-03-01"), ("2026-01-01", "2999-01-01")])
def test_bad_or_future_dates_exit_2_with_one_line(first: str, last: str, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An impossible date, a reversed range or a range reaching the future: one line on stderr, exit status 2."""
    monkeypatch.setenv("WAVIX_API_KEY", "key")
    assert cli(["backfill", "--from", first, "--to", last]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wavix-events backfill: ") and "\n" not in err
