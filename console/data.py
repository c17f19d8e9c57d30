"""The console's reads: the call index and summaries (contract/record.py), the dead-letter stream.

Each page costs a bounded number of round trips: the index range (ZREVRANGEBYSCORE, at most `MAX_CALLS`),
the summaries in one MGET, the dead letters in one XREVRANGE of at most `MAX_LETTERS`, the operators'
replays in one pipelined ZCOUNT per kind. A call's figures are its summary's, written once (contract/record.py):
a replay is counted on its own, and the webhook-to-event latency counts only calls found by a webhook. Nothing here
writes; the actions (replay, purge) are in console/app.py and call workers/operate/dlq.py.

Accounts (issue #26): a call's account is its summary's; a dead letter's is read from its payload
(workers/operate/dlq.py `account_of`: a job's receipt names it, a delivery's event carries it), so neither costs a read.
`accounts` is what a page offers to filter by: the configured names (ACCOUNTS_FILE, read by name only) and any
other the listed items hold.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis

from contract.jobs import DELIVER
from contract.record import REPLAY_KINDS, CallSummary, calls_key, decode_summary, latency_ms, replays_key, summary_key
from workers.deadletter import DeadLetter, entry
from workers.operate.dlq import account_of

MAX_CALLS = 2000  # per page or chart: an hour of a busy account
MAX_LETTERS = 1000


@dataclass(frozen=True)
class CallFilter:
    """The calls page's filters; empty strings mean "any"."""

    minutes: int = 60
    outcome: str = ""
    direction: str = ""
    alerted: str = ""  # "yes", "no" or ""
    account: str = ""

    def keeps(self, s: CallSummary) -> bool:
        return ((not self.account or s.account == self.account)
                and (not self.outcome or s.outcome == self.outcome)
                and (not self.direction or s.direction == self.direction)
                and (not self.alerted or s.alerted == (self.alerted == "yes")))


async def calls(redis: Redis, key_prefix: str, since_ms: int, limit: int = MAX_CALLS) -> list[CallSummary]:
    """The indexed calls since `since_ms`, newest first."""
    ids = await redis.zrevrangebyscore(calls_key(key_prefix), "+inf", since_ms, start=0, num=limit)
    if not ids:
        return []
    raw = await redis.mget([summary_key(key_prefix, i.decode()) for i in ids])
    return [decode_summary(r) for r in raw if r]


@dataclass
class Overview:
    minutes: int
    account: str = ""  # only this account's calls and dead letters ("" every account's)
    calls: int = 0
    per_minute: dict[int, Counter[str]] = field(default_factory=dict)  # minute (epoch ms) -> outcome -> calls
    latencies_ms: list[int] = field(default_factory=list)
    recovered: int = 0
    alerted: int = 0
    dead_letters: int = 0
    dead_by_destination: dict[str, int] = field(default_factory=dict)
    dead_by_kind: dict[str, int] = field(default_factory=dict)
    replayed: dict[str, int] = field(default_factory=dict)  # replay kind -> deliveries or letters replayed

    def percentile(self, p: float) -> int | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def overview(redis: Redis, key_prefix: str, stream: str, minutes: int = 60, account: str = "") -> Overview:
    """The last `minutes`: calls, latency, recoveries and alerts from the summaries; dead letters (of the newest
    MAX_LETTERS when one `account` is asked for, their payloads naming it); replays, which no account owns."""
    start = now_ms() - minutes * 60_000
    view = Overview(minutes=minutes, account=account)
    for s in await calls(redis, key_prefix, start):
        if account and s.account != account:
            continue
        view.calls += 1
        view.per_minute.setdefault(s.at_ms // 60_000 * 60_000, Counter())[s.outcome] += 1
        latency = latency_ms(s)
        if latency is not None and s.found_by == "webhook":  # a recovered call had no webhook: counted apart
            view.latencies_ms.append(latency)
        view.recovered += s.found_by != "webhook"
        view.alerted += s.alerted
    letters = await dead_letters(redis, stream)
    if account:
        letters = [d for d in letters if account_of(d) == account]
    view.dead_letters = len(letters) if account else await redis.xlen(stream)
    view.dead_by_destination = dead_per_destination(letters)
    view.dead_by_kind = dict(Counter(d.kind for d in letters))
    view.replayed = await replays(redis, key_prefix, start)
    return view


async def replays(redis: Redis, key_prefix: str, since_ms: int) -> dict[str, int]:
    """Operators' replays since `since_ms` by kind (contract/record.py): counted apart from calls and latency."""
    async with redis.pipeline(transaction=False) as pipe:
        for kind in REPLAY_KINDS:
            pipe.zcount(replays_key(key_prefix, kind), since_ms, "+inf")
        counts = await pipe.execute()
    return dict(zip(REPLAY_KINDS, counts, strict=True))


async def dead_letters(redis: Redis, stream: str, limit: int = MAX_LETTERS) -> list[DeadLetter]:
    """The newest dead letters first."""
    return [entry(i, f) for i, f in await redis.xrevrange(stream, count=limit)]


def destination_of(letter: DeadLetter) -> str:
    """A delivery's dead letter names its destination (the `Delivery` payload); other kinds have none."""
    if letter.kind != DELIVER:
        return ""
    try:
        payload = msgspec.msgpack.decode(letter.payload)
    except msgspec.DecodeError:
        return ""
    return str(payload.get("destination", "")) if isinstance(payload, dict) else ""


def accounts(configured: Sequence[str], seen: Iterable[str]) -> list[str]:
    """The accounts a page offers: the configured ones in the file's order, then any other the items name."""
    return list(dict.fromkeys([*configured, *sorted({a for a in seen if a} - set(configured))]))


def dead_per_destination(letters: list[DeadLetter]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for letter in letters:
        name = destination_of(letter)
        if name:
            counts[name] += 1
    return dict(counts)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
