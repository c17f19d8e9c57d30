"""Reconciliation: every call Wavix made gets its event, even when its webhook never reached us.

Wavix documents no webhook retries: a webhook our endpoint could not take (Redis down, a deploy, a network
blip) is gone. So, for each account (contract/accounts.py) on its own schedule, every RECONCILE_INTERVAL seconds
(the account's `reconcile_interval`; 0 or `reconcile: false`: off) ONE worker process, whichever takes its lock

    SET {KEY_PREFIX}reconcile:lock[:<account>] <token> NX EX <interval>     (kept until it expires; the
                                                                             `default` account's has no suffix)

runs a pass: for `type` placed and received, `GET /v1/cdrs?from=&to=&type=&disposition=all&page=&per_page=1000`
over the whole UTC days covering now - RECONCILE_LOOKBACK .. now, paged to the end; the items whose `date`
lies in the window (and that ended at least SETTLE_S ago, so a webhook still on its way is not counted as
missed) go to `workers.fetch.listed.ListedIntake`: one ENQUEUE_MANY per page, the receiver's own script,
so a call seen before costs nothing and a webhook that comes later is a duplicate. Each call queued here
is a missed webhook: logged once (`reconcile.missed_webhook`, with its call id) and counted in
`wavix_reconciled_calls`. A listing request that fails is retried by `workers.retry.RetryPolicy` (Retry-After
honoured) at most PASS_TRIES times; then the pass fails (`wavix_reconcile_failures`) and the next interval
tries again. A pass that outlives the lock may overlap the next one: the dedup makes that harmless.
Each account's pass lists with its own key, queues its calls under its own name (their events say so) and
runs as a task of its own, so one account's slow or failing Wavix delays no other's pass; its outcome is
counted per account too (`wavix_account_reconciled_calls`, `..._reconcile_failures`, `..._last_success...`).

Cost, measured (bench/reconcile.py; sandbox and Redis on loopback): a pass over 10,000 listed calls all seen
before takes 0.4-0.5 s. An account with 10,000 calls a day needs 11 list requests per pass (per_page 1000:
5-6 pages per type over one day); a lookback that crosses midnight lists both days, up to twice that.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contract import logs, redisurl
from contract.accounts import DEFAULT, Account, at_start
from contract.settings import Settings
from workers.alert.incidents import missed_webhooks
from workers.fetch.accounts import AccountClients
from workers.fetch.listed import ListedCall, ListedIntake, read_listed, with_retries
from workers.fetch.subaccounts import AccountApi, refresh_keys
from workers.fetch.wavix import WavixClient
from workers.operate.metrics import WorkerMetrics
from workers.retry import CallError, RetryPolicy

log = logs.get("workers.fetch.reconcile")

LIST_TYPES = ("placed", "received")
PER_PAGE = 1000  # the spec names no maximum (int32); 1,000 CDRs are about 0.5 MB a page
PASS_TRIES = 5  # tries per listing request before the pass gives up until the next interval
SETTLE_S = 60.0  # a call that ended this recently may still have its webhook on the way
MAX_PAGES = 10_000  # a runaway `total_pages` cannot keep a pass going for ever
TICK_S = 5.0  # the scheduler looks at the accounts at least this often (a reload may add some)


@dataclass
class PassReport:
    """What one pass did: calls listed, in the window, queued (= missed webhooks), skipped, API requests."""

    listed: int = 0
    in_window: int = 0
    queued: int = 0
    skipped: int = 0  # unreadable, or an id that breaks the rules
    requests: int = 0
    days: tuple[str, str] = ("", "")
    seconds: float = 0.0


def lock_key(key_prefix: str, account: str = DEFAULT) -> str:
    return f"{key_prefix}reconcile:lock" if account == DEFAULT else f"{key_prefix}reconcile:lock:{account}"


def interval_of(account: Account, settings: Settings) -> int:
    """The account's seconds between passes; 0: it is not reconciled."""
    return (account.reconcile_interval or settings.reconcile_interval) if account.reconcile else 0


def days_covering(now: float, lookback: float) -> tuple[date, date]:
    """The first and last whole UTC day of now - lookback .. now."""
    first = datetime.fromtimestamp(now - lookback, UTC).date()
    return first, datetime.fromtimestamp(now, UTC).date()


async def reconcile_pass(wavix: WavixClient, intake: ListedIntake, *, now: float, lookback: float,
                         policy: RetryPolicy, metrics: WorkerMetrics | None = None, settle_s: float = SETTLE_S,
                         per_page: int = PER_PAGE, tries: int = PASS_TRIES) -> PassReport:
    """One pass at the moment `now` (unix seconds; tests pass their own clock). Raises `CallError` when Wavix
    keeps failing and redis' errors when Redis does."""
    first, last = days_covering(now, lookback)
    report = PassReport(days=(first.isoformat(), last.isoformat()))
    since, settled = now - lookback, now - settle_s
    for list_type in LIST_TYPES:
        page, pages = 1, 1
        while page <= min(pages, MAX_PAGES):
            listing = await with_retries(
                partial(wavix.list_cdrs, first, last, list_type, page, per_page), policy, tries=tries,
                what=f"{wavix.list_template} type={list_type} page={page}")
            report.requests += 1
            report.listed += len(listing.items)
            calls = _in_window(listing.items, since, settled, report)
            queued = await intake.offer(calls, source="reconcile", listed_type=list_type)
            for call, new in zip(calls, queued, strict=True):
                if new:
                    report.queued += 1
                    log.warning("reconcile.missed_webhook", call_id=call.call_id, type=list_type,
                                account=intake.account)
                    if metrics is not None:
                        metrics.reconciled.inc()
                        metrics.account_reconciled.labels(intake.account).inc()
            pages = listing.total_pages if listing.items else page
            page += 1
    return report


def _in_window(items: list[msgspec.Raw], since: float, settled: float, report: PassReport) -> list[ListedCall]:
    calls: list[ListedCall] = []
    for item in items:
        call = read_listed(bytes(item))
        if call is None:
            report.skipped += 1
        elif call.started_at is None or (call.started_at >= since and (call.ended_at or 0.0) <= settled):
            calls.append(call)  # an undated call is queued: a needless job beats a lost call
    report.in_window += len(calls)
    return calls


async def run_once(redis: Redis, wavix: WavixClient, settings: Settings, metrics: WorkerMetrics, *,
                   policy: RetryPolicy, now: float | None = None, settle_s: float = SETTLE_S,
                   account: str = DEFAULT) -> PassReport | None:
    """One pass of `account` with its metrics; a failure is logged and counted, never raised (None)."""
    started = time.perf_counter()
    intake = ListedIntake.from_settings(redis, settings, account=account)
    try:
        report = await reconcile_pass(wavix, intake, now=time.time() if now is None else now,
                                      lookback=settings.reconcile_lookback, policy=policy, metrics=metrics,
                                      settle_s=settle_s)
    except (CallError, RedisError, OSError) as e:
        _failed(metrics, account)
        log.warning("reconcile.failed", reason=str(e), error=type(e).__name__, account=account)
        return None
    except Exception:  # a bug: logged with its traceback, and the next interval tries again
        _failed(metrics, account)
        log.error("reconcile.crashed", exc_info=True, account=account)
        return None
    finally:
        metrics.reconcile_seconds.observe(time.perf_counter() - started)
    report.seconds = time.perf_counter() - started
    metrics.reconcile_last_success.set(time.time())
    metrics.account_reconcile_last_success.labels(account).set(time.time())
    log.info("reconcile.pass", account=account, listed=report.listed, in_window=report.in_window, queued=report.queued,
             skipped=report.skipped, requests=report.requests, first_day=report.days[0], last_day=report.days[1],
             seconds=round(report.seconds, 3))
    await missed_webhooks(redis, settings.key_prefix, report.queued)  # a pipeline incident (workers/alert/incidents.py)
    return report


def _failed(metrics: WorkerMetrics, account: str) -> None:
    metrics.reconcile_failures.inc()
    metrics.account_reconcile_failures.labels(account).inc()


async def take_turn(redis: Redis, key_prefix: str, interval: int, account: str = DEFAULT) -> bool:
    """Whether this process runs the account's pass of this interval (the lock is left to expire, never
    released)."""
    return bool(await redis.set(lock_key(key_prefix, account), secrets.token_hex(8), nx=True, ex=interval))


async def run_reconciler(redis: Redis, accounts: AccountClients, settings: Settings, metrics: WorkerMetrics, *,
                         policy: RetryPolicy, stop: asyncio.Event) -> None:
    """The worker's background task: for each account, each of its intervals, try to take its turn and run its
    pass if taken, as a task of its own. An account's first try comes one interval after start (or after a
    reload added it), so short-lived (burst) workers never reconcile."""
    metrics.reconcile_interval.set(settings.reconcile_interval)
    due: dict[str, float] = {}
    running: dict[str, asyncio.Task[None]] = {}
    try:
        while not stop.is_set():
            now = time.monotonic()
            for account in accounts.accounts.all:
                interval = interval_of(account, settings)
                if interval <= 0:
                    due.pop(account.name, None)
                    continue
                if now >= due.setdefault(account.name, now + interval) and not _busy(running.get(account.name)):
                    due[account.name] = now + interval
                    running[account.name] = asyncio.create_task(_turn(redis, accounts, account.name, interval,
                                                                      settings, metrics, policy))
            wait = min((at - now for at in due.values()), default=TICK_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(max(wait, 0.05), TICK_S))
    finally:
        for task in running.values():
            task.cancel()


def _busy(task: asyncio.Task[None] | None) -> bool:
    return task is not None and not task.done()


async def _turn(redis: Redis, accounts: AccountClients, name: str, interval: int, settings: Settings,
                metrics: WorkerMetrics, policy: RetryPolicy) -> None:
    try:
        mine = await take_turn(redis, settings.key_prefix, interval, name)
        wavix = accounts.wavix(name) if mine else None
    except (RedisError, OSError) as e:
        _failed(metrics, name)
        log.warning("reconcile.lock_failed", reason=str(e), account=name)
        return
    except CallError as e:  # not configured any more, or its key not read yet
        _failed(metrics, name)
        log.warning("reconcile.failed", reason=e.reason, account=name)
        return
    if wavix is not None:
        await run_once(redis, wavix, settings, metrics, policy=policy, account=name)


async def reconcile_now(settings: Settings, *, now: float | None = None, settle_s: float = 0.0,
                        policy: RetryPolicy | None = None) -> PassReport | None:
    """One pass of every reconciled account outside a worker (the demo, the bench): its own HTTP clients and
    Redis connection, no lock. The accounts' reports added up; None when any pass failed."""
    clients = AccountClients(settings, at_start(settings), concurrency=2)
    redis = redisurl.client(settings.redis_url)
    total, failed = PassReport(), False
    try:
        if any(a.key_at_run_time for a in clients.configured.all):
            api = AccountApi.open(settings, settings.wavix_master_api_key)
            try:
                await refresh_keys(api, clients)
            finally:
                await api.aclose()
        for account in clients.accounts.all:
            if not account.reconcile:
                continue
            report = await run_once(redis, clients.wavix(account.name), settings, WorkerMetrics(), now=now,
                                    settle_s=settle_s, policy=policy or RetryPolicy.from_settings(settings),
                                    account=account.name)
            if report is None:
                failed = True
                continue
            for name in ("listed", "in_window", "queued", "skipped", "requests", "seconds"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.days = report.days
        return None if failed else total
    finally:
        await redisurl.close(redis)
        await clients.aclose()
