"""A call's own Redis keys, as an erasure sees them: what holds its data, what says where it went, what is busy.

Deleted (they hold the call's personal data, or lead to it):

    {prefix}webhooks:{call}           the webhooks as received (numbers, raw bodies)
    {prefix}record:{call}             the call's record; {prefix}summary:{call} and its place in {prefix}calls
    {prefix}transcript_state:{call}   its transcript outcome
    {prefix}alert_ts:{call}           where its Slack alert landed
    the Slack outbox's entries of the call (alerts and transcript notes waiting: numbers, summaries)
    the replays index's entries of the call, and its parked deliveries (event bodies) of every destination
    arq's job, result and retry keys of its jobs (process_call, transcript, follow-up, every `deliver`), and
    their places in the queue: a job of an erased call must not run and write it all again

A call of an account other than `default` has its receiver's keys under its account (contract/intake.scoped):
`webhooks:<account>/{call}` and its process_call, transcript and follow-up jobs; so every function here that
names those keys takes the configured accounts (`accounts`), and a call's keys are the union over them (what a
forged webhook posted with another account's token left is erased too). `accounts_of` says which account a call
is: its summary's, else the account whose webhooks of it are kept.

Kept, holding no personal data: the dedup marks (`seen:`: a late webhook of the call stays a duplicate), the
delivery ledger's marks (`delivered:`, `published:`: a replay never sends the call's events again), and the
alert gates (`alerted:`: never a second alert). A call with one of its jobs running (arq's in-progress mark) is
busy: it is left whole and reported, and `forget` run again once the job has ended erases it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from redis.asyncio import Redis

from contract.accounts import DEFAULT
from contract.events import ALERT_RULES, COMPLETED, ERASED, TRANSCRIBED, UNAVAILABLE, event_id
from contract.intake import FOLLOW_UP_SUFFIX, call_job_id, scoped, transcript_job_id
from contract.record import (
    REPLAY_KINDS,
    calls_key,
    decode_entry,
    decode_summary,
    record_key,
    replays_key,
    summary_key,
)
from contract.webhooks import webhooks_key
from workers.alert.rules import note_keys, pending_keys
from workers.deliver import eventlog, health
from workers.deliver.jobs import decode_delivery

CALL_EVENTS = (COMPLETED, TRANSCRIBED, UNAVAILABLE)


def event_ids(call_id: str) -> dict[str, str]:
    """The ids every event of the call has (or would have): event id -> type."""
    return {event_id(call_id, kind): kind for kind in CALL_EVENTS}


def erased_event_id(call_id: str) -> str:
    return event_id(call_id, ERASED)


def scoped_ids(call_id: str, accounts: Sequence[str] = ()) -> list[str]:
    """The call's id as each account's receiver keys name it: the id itself (`default`), `<account>/<id>`."""
    return list(dict.fromkeys([call_id, *(scoped(a, call_id) for a in accounts)]))


def data_keys(prefix: str, call_id: str, accounts: Sequence[str] = ()) -> list[str]:
    """The call's keys that hold its data."""
    return [*(webhooks_key(prefix, k) for k in scoped_ids(call_id, accounts)), record_key(prefix, call_id),
            summary_key(prefix, call_id), f"{prefix}transcript_state:{call_id}", f"{prefix}alert_ts:{call_id}",
            *(eventlog.first_key(prefix, eid) for eid in sorted(event_ids(call_id)))]


def job_ids(prefix: str, call_id: str, destinations: Sequence[str], accounts: Sequence[str] = ()) -> list[str]:
    deliveries = [f"{prefix}deliver:{eid}:{name}" for eid in event_ids(call_id) for name in destinations]
    ids = []
    for key in scoped_ids(call_id, accounts):
        transcript = transcript_job_id(prefix, key)
        ids += [call_job_id(prefix, key), transcript, transcript + FOLLOW_UP_SUFFIX]
    return [*ids, *deliveries]


async def busy(redis: Redis, prefix: str, call_ids: Sequence[str], destinations: Sequence[str],
               accounts: Sequence[str] = ()) -> set[str]:
    """The calls with a job running now."""
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in call_ids:
            for jid in job_ids(prefix, call_id, destinations, accounts):
                pipe.exists(in_progress_key_prefix + jid)
        found = await pipe.execute()
    per_call = len(found) // max(len(call_ids), 1)
    return {c for i, c in enumerate(call_ids) if any(found[i * per_call:(i + 1) * per_call])}


async def held(redis: Redis, prefix: str, call_ids: Sequence[str], accounts: Sequence[str] = ()) -> dict[str, int]:
    """How many data keys each call still has (0: none). Its record is not counted: it holds no personal data,
    and the delivery of `wavix.call.erased` writes one again."""
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in call_ids:
            pipe.exists(*[k for k in data_keys(prefix, call_id, accounts) if k != record_key(prefix, call_id)])
        return dict(zip(call_ids, [int(n) for n in await pipe.execute()], strict=True))


async def accounts_of(redis: Redis, prefix: str, call_ids: Sequence[str], accounts: Sequence[str] = (),
                      known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each call's account: its summary's, else `known`'s (what its events elsewhere said), else the first account
    (in `accounts`' order, `default` first) whose webhooks of it are kept, else `default`. One round trip."""
    names = list(dict.fromkeys([DEFAULT, *accounts]))
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in call_ids:
            pipe.get(summary_key(prefix, call_id))
            for name in names:
                pipe.exists(webhooks_key(prefix, scoped(name, call_id)))
        answers = await pipe.execute()
    out, step = {}, 1 + len(names)
    for i, call_id in enumerate(call_ids):
        summary, *posted = answers[i * step:(i + 1) * step]
        by_webhooks = next((name for name, hit in zip(names, posted, strict=True) if hit), DEFAULT)
        out[call_id] = (decode_summary(summary).account if summary else None) or (known or {}).get(call_id) \
            or by_webhooks
    return out


async def received_by(redis: Redis, prefix: str, call_id: str, destinations: Sequence[str]) -> set[str]:
    """The destinations that have one of the call's events: the ledger's marks, and the record's deliveries."""
    names = list(destinations)
    pairs = [(eid, name) for eid in event_ids(call_id) for name in names]
    marks = await redis.exists(*[f"{prefix}delivered:{eid}:{name}" for eid, name in pairs]) if pairs else 0
    found = set()
    if marks:
        async with redis.pipeline(transaction=False) as pipe:
            for eid, name in pairs:
                pipe.exists(f"{prefix}delivered:{eid}:{name}")
            found = {name for (_, name), hit in zip(pairs, await pipe.execute(), strict=True) if hit}
    for raw in await redis.lrange(record_key(prefix, call_id), 0, -1):  # type: ignore[misc]
        entry = decode_entry(raw)
        if entry.step == "delivery" and entry.ok and entry.destination in names and entry.event_type != ERASED:
            found.add(entry.destination)
    return found


async def numbers_in_summary(redis: Redis, prefix: str, call_id: str) -> set[str]:
    """The numbers the call's summary names (for its entries in the number index)."""
    raw = await redis.get(summary_key(prefix, call_id))
    if raw is None:
        return set()
    summary = decode_summary(raw)
    return {n for n in (summary.from_number, summary.to_number) if n}


async def call_time_ms(redis: Redis, prefix: str, call_id: str) -> int | None:
    """When the call was first seen (its summary, else its place in the console's index)."""
    score = await redis.zscore(calls_key(prefix), call_id)
    return int(score) if score is not None else None


async def delete(redis: Redis, prefix: str, call_ids: Iterable[str], *, queue: str,
                 destinations: Sequence[str], accounts: Sequence[str] = ()) -> int:
    """Deletes each call's data keys, jobs, outbox entries, parked deliveries and replay entries; returns how many
    keys and entries went."""
    calls = list(call_ids)
    due, data = pending_keys(prefix)
    note_due, note_data = note_keys(prefix)
    alert_fields = [f"{c}:{reason}" for c in calls for reason in ALERT_RULES]
    async with redis.pipeline(transaction=False) as pipe:
        for call_id in calls:
            pipe.delete(*data_keys(prefix, call_id, accounts))
            for jid in job_ids(prefix, call_id, destinations, accounts):
                pipe.zrem(queue, jid)
                pipe.delete(job_key_prefix + jid, result_key_prefix + jid, retry_key_prefix + jid)
            pipe.zrem(calls_key(prefix), call_id)
        if calls:
            pipe.hdel(data, *alert_fields)
            pipe.zrem(due, *alert_fields)
            pipe.hdel(note_data, *calls)
            pipe.zrem(note_due, *calls)
        gone = sum(int(n) for n in await pipe.execute())
    return gone + await _parked(redis, prefix, set(calls), destinations) + await _replays(redis, prefix, set(calls))


async def _parked(redis: Redis, prefix: str, calls: set[str], destinations: Sequence[str]) -> int:
    gone = 0
    for name in destinations:
        parked = health.keys(prefix, name).parked
        members = [m for m in await redis.zrange(parked, 0, -1) if _call_of(m) in calls]
        if members:
            gone += int(await redis.zrem(parked, *members))
    return gone


def _call_of(member: bytes) -> str:
    try:
        return decode_delivery(member).call_id
    except msgspec.DecodeError:
        return ""


async def _replays(redis: Redis, prefix: str, calls: set[str]) -> int:
    """Replay index members are `at:call:job:event:destination`."""
    gone = 0
    for kind in REPLAY_KINDS:
        key = replays_key(prefix, kind)
        members = [m async for m, _ in redis.zscan_iter(key) if _names(m.decode().partition(":")[2], calls)]
        if members:
            gone += int(await redis.zrem(key, *members))
    return gone


def _names(rest: str, calls: set[str]) -> bool:
    """Whether a replay member's part after its time begins with one of the call ids (ids may hold ':')."""
    return any(rest.startswith(call_id + ":") for call_id in calls)
