"""Erasure: `wavix-events forget --call ID` or `--number +E164 [--from --to]`: a caller's data gone from every store
we own, every destination that had the call told to do the same. The operator's runbook is in the README.

    find     the calls: --call names one; --number asks the number index (workers/privacy/index.py), reads the
             event log and the dead letters for the number (streams.py), and asks each PostgreSQL destination
             (pgstore.py); --from/--to keep the calls made within those dates
    check    a call with a job running is busy: left whole, reported, erased by a later run (exit 1)
    erase    the call's keys, jobs, outbox entries (callkeys.py); its event log entries, dead letters and entries
             in Redis Stream destinations (streams.py); its PostgreSQL rows; its entries in the number index
    bury     its id in the tombstone (tombstone.py): reconciliation and backfill never import it again
    tell     `wavix.call.erased` (no number: the call id, its event ids and its account) queued as a `deliver` job
             to each destination that received the call's events (the ledger's marks, the call's record, the rows
             and entries just found; when none is known any more, every destination whose filter takes the
             call's account), so it goes out through the normal delivery: retries, the ledger, dead letters
    audit    one line in {prefix}erasures: who, when, which kind of request, how many calls; no number

Idempotent: a second run finds nothing left and tells no one (each destination gets `wavix.call.erased` once:
its id is a function of the call, and the ledger drops a repeat). `--dry-run` finds and counts, and changes
nothing.

Accounts (issue #26): one erasure event per call, carrying the call's account in its envelope and data as the
call's own events did, so a route's `filter: {accounts: [...]}` takes the erasures of its accounts' calls only,
and an erasure of calls of several accounts tells each account's destinations of their own. A call's account is
its summary's, else its events' (event log, PostgreSQL rows), else the account whose webhooks of it are kept
(callkeys.accounts_of); the receiver's keys of a call are under its account, so each configured account's are
erased (`accounts`: ACCOUNTS_FILE's names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis

from contract import events as ev
from contract import logs, redisurl
from contract.accounts import DEFAULT
from contract.privacy import RedactKey
from contract.settings import Settings
from workers.deliver import eventlog
from workers.deliver.jobs import Delivery, now_ms, requeue
from workers.deliver.route import Destination
from workers.deliver.sinks.base import query_params, scheme_of, without_params
from workers.privacy import callkeys, erased, index, streams, tombstone
from workers.privacy.pgstore import PostgresStore, is_postgres

log = logs.get("workers.privacy.erase")

MARGIN_MS = 3_600_000  # clocks differ: a call's entries are looked for from an hour before it


@dataclass(frozen=True)
class Request:
    """One `forget`: a call id, or a number (E.164) with an optional window of call dates (ms)."""

    call_id: str | None = None
    number: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    dry_run: bool = False
    by: str = ""

    @property
    def kind(self) -> str:
        return "call" if self.call_id else "number"


@dataclass
class Report:
    """What a run found and did; `counts` by store (keys or entries or rows)."""

    calls: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    told: dict[str, int] = field(default_factory=dict)  # destination -> calls it is told were erased
    accounts: dict[str, int] = field(default_factory=dict)  # account -> its calls among `calls`
    audit_id: str = ""

    def add(self, store: str, n: int) -> None:
        self.counts[store] = self.counts.get(store, 0) + n


@dataclass
class _Found:
    calls: dict[str, int | None] = field(default_factory=dict)  # call id -> its time (ms), when known
    numbers: set[str] = field(default_factory=set)
    log: streams.Matches | None = None
    letters: streams.Matches | None = None
    streams: dict[str, streams.Matches] = field(default_factory=dict)  # destination -> its entries
    rows: dict[str, list[str]] = field(default_factory=dict)  # PostgreSQL destination -> its call ids
    accounts: dict[str, str] = field(default_factory=dict)  # call id -> its account


class Eraser:
    """An erasure over one deployment: its Redis, its destinations, REDACT_KEY (to find hashed numbers)."""

    def __init__(self, redis: Redis, settings: Settings, destinations: tuple[Destination, ...],
                 key: RedactKey | None = None, accounts: Sequence[str] = ()) -> None:
        self.redis, self.settings, self.destinations, self.key = redis, settings, destinations, key
        self.prefix = settings.key_prefix
        self.names = [d.name for d in destinations]
        self.accounts = tuple(accounts) or (DEFAULT,)  # the configured accounts' names

    async def run(self, request: Request) -> Report:
        report = Report()
        found = await self._find(request)
        busy = await callkeys.busy(self.redis, self.prefix, list(found.calls), self.names, self.accounts)
        report.busy = sorted(busy)
        calls = {c: t for c, t in found.calls.items() if c not in busy}
        report.calls = sorted(calls)
        for call_id in report.calls:
            account = found.accounts.get(call_id, DEFAULT)
            report.accounts[account] = report.accounts.get(account, 0) + 1
        if request.dry_run:
            await self._count(found, set(calls), report)
        elif calls:
            told = await self._erase(found, set(calls), report)
            await tombstone.bury(self.redis, self.prefix, calls)
            await self._tell(told, found.accounts, report)
        if not request.dry_run:
            report.audit_id = await self._audit(request, report)
        return report

    # --- find ---

    async def _find(self, request: Request) -> _Found:
        found = _Found()
        if request.call_id:
            found.calls[request.call_id] = await callkeys.call_time_ms(self.redis, self.prefix, request.call_id)
        if request.number:
            found.numbers.add(request.number)
            found.calls.update(await index.calls_of(self.redis, self.prefix, request.number,
                                                    since_ms=request.since_ms, until_ms=request.until_ms))
        needles = self._needles(request, found)
        found.log = await streams.scan(self.redis, eventlog.key(self.prefix), streams.event_log_match(needles),
                                       since_ms=self._since(request, found), keep=b"event")
        found.letters = await streams.scan(self.redis, self.settings.dead_letter_stream,
                                           streams.dead_letter_match(needles))
        windowed = request.since_ms is not None or request.until_ms is not None
        for call_id, body in found.log.bodies.items():
            moment = erased.event_time_ms(body)
            if not windowed or (moment is not None and _within(moment, request)):
                found.calls.setdefault(call_id, moment)
        for call_id in found.letters.calls if not windowed else ():  # a letter's call date is unknown
            found.calls.setdefault(call_id, None)
        await self._find_rows(request, found)
        await self._find_in_destinations(request, found)
        if request.call_id:  # a call id is the request: nothing else joins it
            found.calls = {request.call_id: found.calls[request.call_id]}
        return await self._held(request, found)

    def _needles(self, request: Request, found: _Found) -> streams.Needles:
        ids = frozenset(found.calls)
        patterns = streams.number_needles(request.number, self._hashed(request.number)) if request.number else ()
        return streams.Needles(call_ids=ids, event_ids=frozenset(e for c in ids for e in callkeys.event_ids(c)),
                               patterns=patterns)

    def _hashed(self, number: str) -> list[str]:
        return [self.key.hash(number)] if self.key is not None else []

    def _since(self, request: Request, found: _Found) -> int:
        """Where a stream scan may start: a call's entries come after the call (less a margin for clocks)."""
        if request.since_ms is not None:
            return request.since_ms - MARGIN_MS
        times = list(found.calls.values())
        if times and all(t is not None for t in times):
            return min(t for t in times if t is not None) - MARGIN_MS
        return 0

    async def _find_rows(self, request: Request, found: _Found) -> None:
        for destination in (d for d in self.destinations if is_postgres(d)):
            store = PostgresStore(destination)
            if request.number:
                since, until = (_moment(request.since_ms), _moment(request.until_ms))
                for call_id, account in (await store.find([request.number, *self._hashed(request.number)], since,
                                                          until)).items():
                    found.calls.setdefault(call_id, None)
                    found.accounts.setdefault(call_id, account)
            found.rows[destination.name] = list(found.calls)

    async def _find_in_destinations(self, request: Request, found: _Found) -> None:
        needles = self._needles(request, found)
        for destination in (d for d in self.destinations if scheme_of(d.url).startswith("redis")):
            client = redisurl.client(without_params(destination.url, frozenset({"stream", "maxlen"})))
            try:
                stream = query_params(destination.url)["stream"]
                found.streams[destination.name] = await streams.scan(
                    client, stream, streams.destination_match(needles), since_ms=self._since(request, found))
            finally:
                await redisurl.close(client)

    async def _held(self, request: Request, found: _Found) -> _Found:
        """Keeps the calls that still have something, or whose number asked for them; notes their numbers."""
        keys = await callkeys.held(self.redis, self.prefix, list(found.calls), self.accounts)
        streamed = set().union(*(m.calls for m in found.streams.values())) if found.streams else set()
        elsewhere = (found.log.calls if found.log else set()) | (found.letters.calls if found.letters else set())
        for call_id in list(found.calls):
            if not (keys.get(call_id) or call_id in elsewhere | streamed or request.number):
                found.calls.pop(call_id)
            else:
                found.numbers |= await callkeys.numbers_in_summary(self.redis, self.prefix, call_id)
                found.numbers |= erased.numbers_of(found.log.bodies.get(call_id, b"") if found.log else b"")
        logged = {c: e.account for c, body in (found.log.bodies.items() if found.log else ())
                  if (e := erased.decoded(body)) is not None}
        found.accounts = await callkeys.accounts_of(self.redis, self.prefix, list(found.calls), self.accounts,
                                                    known={**found.accounts, **logged})
        return found

    # --- count, erase, tell, audit ---

    async def _count(self, found: _Found, calls: set[str], report: Report) -> None:
        held = await callkeys.held(self.redis, self.prefix, list(calls), self.accounts)
        report.add("call keys", sum(held.values()))
        report.add("event log", sum(1 for c in found.log.entries.values() if c in calls) if found.log else 0)
        report.add("dead letters", sum(1 for c in found.letters.entries.values() if c in calls) if found.letters else 0)
        for name, matches in found.streams.items():
            report.add(f"stream {name}", sum(1 for c in matches.entries.values() if c in calls))
        for destination in (d for d in self.destinations if d.name in found.rows):
            report.add(f"postgres {destination.name}", await PostgresStore(destination).count(sorted(calls)))

    async def _erase(self, found: _Found, calls: set[str], report: Report) -> dict[str, set[str]]:
        """Deletes everything of `calls`; answers, per call, the destinations to tell."""
        told = {c: await callkeys.received_by(self.redis, self.prefix, c, self.names) for c in calls}
        for name, matches in found.streams.items():
            for call_id in matches.calls & calls:
                told[call_id].add(name)
        report.add("call keys", await callkeys.delete(self.redis, self.prefix, calls, queue=self.settings.queue_name,
                                                      destinations=self.names, accounts=self.accounts))
        if found.log:
            report.add("event log", await streams.delete(self.redis, found.log, calls))
        if found.letters:
            report.add("dead letters", await streams.delete(self.redis, found.letters, calls))
        await self._erase_elsewhere(found, calls, report, told)
        for number in found.numbers:
            mine = {c: t for c, t in (await index.calls_of(self.redis, self.prefix, number)).items() if c in calls}
            await index.remove(self.redis, self.prefix, number, mine)
            report.add("number index", len(mine))
        return told

    async def _erase_elsewhere(self, found: _Found, calls: set[str], report: Report,
                               told: dict[str, set[str]]) -> None:
        for destination in self.destinations:
            if destination.name in found.streams:
                client = redisurl.client(without_params(destination.url, frozenset({"stream", "maxlen"})))
                try:
                    gone = await streams.delete(client, found.streams[destination.name], calls)
                finally:
                    await redisurl.close(client)
                report.add(f"stream {destination.name}", gone)
            if destination.name in found.rows:
                rows = await PostgresStore(destination).delete(sorted(calls))
                report.add(f"postgres {destination.name}", rows)
                if rows:
                    for call_id in calls:
                        told[call_id].add(destination.name)

    async def _tell(self, told: dict[str, set[str]], accounts: dict[str, str], report: Report) -> None:
        """Queues `wavix.call.erased` to each destination that had the call (when none is known, every one whose
        filter takes the call's account)."""
        deliveries = []
        for call_id, names in sorted(told.items()):
            account = accounts.get(call_id, DEFAULT)
            event = erased.erased_event(call_id, datetime.now(UTC), account)
            body = ev.encode_event(event)
            for name in sorted(names or self._of_account(account)):
                deliveries.append(Delivery(destination=name, call_id=call_id, event_id=event.id, event=body,
                                           first_at_ms=now_ms(), tries=0))
                report.told[name] = report.told.get(name, 0) + 1
        await requeue(self.redis, deliveries, prefix=self.prefix, queue=self.settings.queue_name,
                      expiry_s=self.settings.job_expiry)

    def _of_account(self, account: str) -> list[str]:
        """The destinations whose filter does not leave the account out: those that may have had its calls."""
        return [d.name for d in self.destinations if d.filter.accounts is None or account in d.filter.accounts]

    async def _audit(self, request: Request, report: Report) -> str:
        fields: dict[str, str | int] = {
            "at_ms": now_ms(), "by": request.by or "unknown", "request": request.kind, "calls": len(report.calls),
            "busy": len(report.busy), "stores": ", ".join(f"{k}={v}" for k, v in sorted(report.counts.items())),
            "told": ", ".join(f"{k}={v}" for k, v in sorted(report.told.items())),
            "accounts": ", ".join(f"{k}={v}" for k, v in sorted(report.accounts.items())),
            "window": f"{request.since_ms or ''}..{request.until_ms or ''}",
        }
        entry = await tombstone.audit(self.redis, self.prefix, fields)
        log.warning("privacy.erased", **{k: v for k, v in fields.items() if k != "at_ms"}, audit=entry)
        return entry


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _within(moment: int, request: Request) -> bool:
    return (request.since_ms is None or moment >= request.since_ms) and (
        request.until_ms is None or moment <= request.until_ms)
