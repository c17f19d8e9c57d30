"""Backfill: `wavix-events backfill --from DAY --to DAY [--type placed|received|both] [--account NAME] [--dry-run]`.

Imports past calls through the path reconciliation takes (workers/fetch/listed.py), from Wavix's NDJSON export:

    for each (UTC day, type) not yet in `{KEY_PREFIX}backfill:done:<from>:<to>`
        GET /v1/cdrs/all?from=DAY&to=DAY&type=...   streamed (`aiter_lines`): never the whole answer in memory
        -> batches of BATCH lines -> ONE ENQUEUE_MANY each (dry run: one pipelined EXISTS each, nothing written)
        -> the (day, type) is added to the done set, unless the day is today (UTC): it is not over, and a
           rerun later today must list it again to find the calls made since

A rerun skips finished (day, type)s, so Ctrl-C or a crash costs at most the day in progress, and redoing that
day is safe: a call queued before is a duplicate for the script. A second full run queues nothing (idempotent).
A day whose export keeps failing (RetryPolicy, PASS_TRIES tries, the whole day redone) is reported and the run
goes on; the exit status is then 1 and a rerun picks the day up. Jobs carry `source="backfill"`, so their events
say `found_by: backfill`. Measured with the sandbox: about 20,000 calls a second reach Redis on one core.
Each account (contract/accounts.py) is exported with its own key and remembered in its own done set
(`...:done:<account>:<from>:<to>`, the `default` account's without the name); without `--account`, every
account is backfilled in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from contract import redisurl
from contract.accounts import DEFAULT, at_start
from contract.errors import SettingsError
from contract.settings import Settings
from workers.fetch.accounts import AccountClients
from workers.fetch.listed import ListedCall, ListedIntake, read_listed, with_retries
from workers.fetch.reconcile import LIST_TYPES, PASS_TRIES
from workers.fetch.subaccounts import AccountApi, refresh_keys
from workers.fetch.wavix import WavixClient
from workers.retry import CallError, RetryPolicy

BATCH = 500
DONE_TTL_S = 30 * 86_400  # a finished range is remembered a month


@dataclass
class Tally:
    """The run's counts: calls listed, already seen, queued (dry run: would be queued), failed lines; days."""

    listed: int = 0
    seen: int = 0
    queued: int = 0
    failed: int = 0  # unreadable lines or impossible call ids
    days_done: int = 0
    days_skipped: int = 0  # finished by an earlier run
    days_failed: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.listed += other.listed
        self.seen += other.seen
        self.queued += other.queued
        self.failed += other.failed

    def summary(self, *, dry_run: bool) -> str:
        verb = "would queue" if dry_run else "queued"
        line = (f"listed {self.listed} · already seen {self.seen} · {verb} {self.queued} · failed {self.failed} · "
                f"days done {self.days_done}, skipped (done before) {self.days_skipped}")
        return line + (f", FAILED {len(self.days_failed)}: {' '.join(self.days_failed)}" if self.days_failed else "")


def parse_range(first: str, last: str, today: date) -> tuple[date, date]:
    """The range as days; `ValueError` with a one-line reason when a date is bad, reversed or in the future."""
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as e:
        raise ValueError(f"dates must be YYYY-MM-DD ({e})") from e
    if len(first) != 10 or len(last) != 10:
        raise ValueError("dates must be YYYY-MM-DD")
    if start > end:
        raise ValueError(f"--from {first} is after --to {last}")
    if end > today:
        raise ValueError(f"--to {last} is in the future (today is {today.isoformat()} UTC)")
    return start, end


def done_key(key_prefix: str, first: date, last: date, account: str = DEFAULT) -> str:
    named = "" if account == DEFAULT else f"{account}:"
    return f"{key_prefix}backfill:done:{named}{first.isoformat()}:{last.isoformat()}"


def units(first: date, last: date, types: Sequence[str]) -> list[tuple[date, str]]:
    return [(first + timedelta(days=i), t) for i in range((last - first).days + 1) for t in types]


class Backfill:
    """One backfill run; `progress(calls)` is told each batch's size (the bar's calls per second)."""

    def __init__(self, wavix: WavixClient, intake: ListedIntake, redis: Redis, *, key: str, dry_run: bool,
                 policy: RetryPolicy, progress: Callable[[int], None] = lambda n: None,
                 today: date | None = None) -> None:
        self.wavix, self.intake, self.redis, self.key = wavix, intake, redis, key
        self.dry_run, self.policy, self.progress = dry_run, policy, progress
        self.today = today or datetime.now(UTC).date()  # this UTC day and later are never marked done
        self.tally = Tally()

    async def run(self, todo: list[tuple[date, str]], on_unit: Callable[[], None] = lambda: None) -> Tally:
        done = {m.decode() for m in await self.redis.smembers(self.key)}  # type: ignore[misc]
        for day, list_type in todo:
            name = f"{day.isoformat()}:{list_type}"
            if name in done:
                self.tally.days_skipped += 1
            else:
                await self._unit(day, list_type, name)
            on_unit()
        return self.tally

    async def _unit(self, day: date, list_type: str, name: str) -> None:
        try:
            counts = await with_retries(lambda: self._stream(day, list_type), self.policy, tries=PASS_TRIES,
                                        what=f"{self.wavix.export_template} {name}")
        except CallError:
            self.tally.days_failed.append(name)
            return
        self.tally.add(counts)
        self.tally.days_done += 1
        if not self.dry_run and day < self.today:
            await self.redis.sadd(self.key, name)  # type: ignore[misc]
            await self.redis.expire(self.key, DONE_TTL_S)

    async def _stream(self, day: date, list_type: str) -> Tally:
        """One (day, type) from the first line: a retry redoes it whole (the dedup makes that safe)."""
        counts, batch = Tally(), []
        async with contextlib.aclosing(self.wavix.export_lines(day, day, list_type)) as lines:
            async for line in lines:
                counts.listed += 1
                call = read_listed(line)
                if call is None:
                    counts.failed += 1
                    continue
                batch.append(call)
                if len(batch) >= BATCH:
                    await self._batch(batch, list_type, counts)
                    batch = []
        await self._batch(batch, list_type, counts)
        return counts

    async def _batch(self, batch: list[ListedCall], list_type: str, counts: Tally) -> None:
        if self.dry_run:
            new = [not seen for seen in await self.intake.seen(batch)]
        else:
            new = await self.intake.offer(batch, source="backfill", listed_type=list_type)
        counts.queued += sum(new)
        counts.seen += len(new) - sum(new)
        self.progress(len(batch))


async def _main(settings: Settings, todo: list[tuple[date, str]], span: tuple[date, date], dry_run: bool,
                console: Console, backfill_box: list[Backfill], account: str) -> Tally:
    clients = AccountClients(settings, at_start(settings), concurrency=2)
    names = [account] if account else list(clients.accounts.names)
    if account and account not in clients.accounts.names:
        raise SettingsError("--account", f"no account {account!r} (known: {', '.join(clients.accounts.names)})")
    redis = redisurl.client(settings.redis_url)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[calls]} calls · {task.fields[rate]}/s"), TimeRemainingColumn())
    tally = Tally()
    try:
        if any(a.key_at_run_time for a in clients.configured.all):
            await _read_keys(settings, clients)
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("days x types" + (" x accounts" if len(names) > 1 else ""),
                                total=len(todo) * len(names), calls=0, rate="0")
            began, calls = time.monotonic(), [0]

            def progress(n: int) -> None:
                calls[0] += n
                rate = calls[0] / max(time.monotonic() - began, 1e-6)
                bar.update(task, calls=calls[0], rate=f"{rate:,.0f}")

            for name in names:  # one account after another, each with its key, intake and done set
                job = Backfill(clients.wavix(name), ListedIntake.from_settings(redis, settings, account=name),
                               redis, key=done_key(settings.key_prefix, *span, name), dry_run=dry_run,
                               policy=RetryPolicy.from_settings(settings), progress=progress)
                job.tally = tally
                backfill_box[:] = [job]
                await job.run(todo, on_unit=lambda: bar.advance(task))
            return tally
    finally:
        await redisurl.close(redis)
        await clients.aclose()


async def _read_keys(settings: Settings, clients: AccountClients) -> None:
    api = AccountApi.open(settings, settings.wavix_master_api_key)
    try:
        await refresh_keys(api, clients)
    finally:
        await api.aclose()


def run(settings: Settings, *, first: str, last: str, types: str = "both", dry_run: bool = False,
        console: Console | None = None, account: str = "") -> int:
    """The command: 0 when every day was imported, 1 when some failed (rerun to resume), 2 for bad dates,
    130 after Ctrl-C (rerun to resume)."""
    console = console or Console(stderr=True)
    try:
        start, end = parse_range(first, last, datetime.now(UTC).date())
    except ValueError as e:
        print(f"wavix-events backfill: {e}", file=sys.stderr)
        return 2
    todo = units(start, end, LIST_TYPES if types == "both" else (types,))
    box: list[Backfill] = []
    status = 0
    try:
        tally = asyncio.run(_main(settings, todo, (start, end), dry_run, console, box, account))
        status = 1 if tally.days_failed else 0
    except KeyboardInterrupt:
        status = 130
    except (RedisError, OSError) as e:
        console.print(f"wavix-events backfill: Redis failed: {e}", highlight=False)
        status = 1
    if box:
        head = "interrupted: rerun the same command to resume\n" if status == 130 else ""
        console.print(head + ("dry run: " if dry_run else "") + box[0].tally.summary(dry_run=dry_run), highlight=False)
    return status
