"""`wavix-events dlq`: what an operator does with dead letters: list, show, replay or purge them.

    dlq list [--destination crm] [--account beta] [--reason 503] [--since 2h] [--until 2026-06-30T12:00Z] [--json]
    dlq show ID                     every field, the payload decoded (a delivery's event as JSON)
    dlq replay ID... | --all [--limit N]   (the same filters narrow --all; --limit takes the N oldest)
    dlq purge [filters] [--limit N] [--yes]   deletes the letters selected, after a y/N question

Filters: `--destination` keeps `deliver` letters for that destination (read from their payload); `--account`
the letters of one account's calls (their job's receipt or delivery's event names it: `account_of`); `--reason`
is a case-insensitive substring of the reason; `--since`/`--until` bound the time the letter was written
(ISO 8601 or an age such as `2h`), through the stream ids, so Redis reads only that range.

A replay deletes its letter only once the work is queued again, and adds a `replay` step to its call's record
(counted apart on the console's overview; workers/operate/record.py `replayed`). A `deliver` letter is queued under the
delivery's own job id, `{prefix}deliver:{event_id}:{destination}`, so several letters for one delivery
queue one job; the others are refused by arq and kept, and the operator is told. Re-delivery goes only
where the event did not arrive: every attempt consults the ledger (workers/deliver/ledger.py) first.
Letters are kept DEAD_LETTER_RETENTION (30 days by default, workers/deadletter.py); a replay refuses (and trims)
one past retention that no write has trimmed yet: its call's delivered marks may be gone, so it could resend them.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import msgspec
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from redis.exceptions import ResponseError

from contract import logs, redisurl
from contract.accounts import DEFAULT
from contract.jobs import DELIVER, FETCH_TRANSCRIPT, JOB_FUNCTIONS, PROCESS_CALL
from contract.record import Entry
from contract.settings import Settings
from workers.alert.notes import queue_note
from workers.alert.outbox import queue_alert
from workers.alert.rules import DeliveryPolicy, decode_alert, decode_note
from workers.deadletter import DEFAULT_RETENTION_S, DeadLetter, entry, past_retention, trim
from workers.deliver.delivery import Delivery
from workers.operate import record
from workers.runtime.queue import connect

log = logs.get("workers.operate.dlq")


@dataclass(frozen=True)
class Filters:
    """Which dead letters a command touches; empty: all. Times are Unix ms."""

    destination: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    kind: str | None = None  # the letter's kind (deliver, process_call, slack_alert, ...): the console's "type"
    account: str | None = None  # the account of the letter's call (issue #26)

    def keeps(self, letter: DeadLetter) -> bool:
        if self.reason and self.reason.lower() not in letter.reason.lower():
            return False
        if self.kind and letter.kind != self.kind:
            return False
        if self.account and account_of(letter) != self.account:
            return False
        return self.destination is None or destination_of(letter) == self.destination


def destination_of(letter: DeadLetter) -> str | None:
    """The destination a `deliver` letter was for (None for other kinds, or a payload that does not decode)."""
    if letter.kind != DELIVER:
        return None
    try:
        return msgspec.msgpack.decode(letter.payload, type=Delivery).destination
    except msgspec.DecodeError:
        return None


def account_of(letter: DeadLetter) -> str:
    """The account of a call's dead letter: its job's receipt, or its delivery's event, names it (`default` when
    written before accounts); "" for the letters of no one call's account (alerts, notes)."""
    if letter.kind not in (DELIVER, PROCESS_CALL, FETCH_TRANSCRIPT):
        return ""
    try:
        payload = msgspec.msgpack.decode(letter.payload)
        if letter.kind == DELIVER and isinstance(payload, dict):
            payload = msgspec.json.decode(payload.get("event", b"{}"))
    except msgspec.DecodeError:
        return ""
    return str(payload.get("account") or DEFAULT) if isinstance(payload, dict) else ""


async def select(redis: ArqRedis, stream: str, filters: Filters, limit: int) -> list[DeadLetter]:
    """Up to `limit` letters the filters keep, oldest first, reading only the stream's time range."""
    low = "-" if filters.since_ms is None else f"{filters.since_ms}-0"
    high = "+" if filters.until_ms is None else f"{filters.until_ms}-18446744073709551615"
    found: list[DeadLetter] = []
    while len(found) < limit:
        page = [entry(i, f) for i, f in await redis.xrange(stream, min=low, max=high, count=500)]
        found += [d for d in page if filters.keeps(d)]
        if len(page) < 500:
            break
        low = "(" + page[-1].id
    return found[:limit]


def show(letter: DeadLetter) -> str:
    """Every field of one letter, its payload decoded (msgpack -> JSON; a delivery's event as its JSON)."""
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.failed_at_ms / 1000))
    lines = [f"id:        {letter.id}", f"failed at: {at}Z", f"kind:      {letter.kind}",
             f"call id:   {letter.call_id}", f"attempts:  {letter.attempts}", f"reason:    {letter.reason}"]
    try:
        payload = msgspec.msgpack.decode(letter.payload)
    except msgspec.DecodeError:
        return "\n".join([*lines, f"payload:   {len(letter.payload)} bytes (not msgpack)"])
    if isinstance(payload, dict) and isinstance(payload.get("event"), bytes):
        lines.append(f"destination: {payload.get('destination')}")
        payload["event"] = json.loads(payload["event"])
    text = json.dumps(payload, indent=2, default=lambda b: b.decode(errors="replace"))
    return "\n".join([*lines, "payload:", text])


async def purge(redis: ArqRedis, stream: str, letters: list[DeadLetter], *, yes: bool) -> int:
    """Deletes `letters` once the operator confirms (or `yes`); returns how many went."""
    if not letters:
        print(f"no dead letters match in {stream}")
        return 0
    if not yes:
        answer = input(f"delete {len(letters)} dead letter(s) from {stream}? this cannot be undone [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    deleted = await delete(redis, stream, letters)
    print(f"deleted {deleted} dead letter(s) from {stream}")
    return deleted


async def delete(redis: ArqRedis, stream: str, letters: list[DeadLetter]) -> int:
    """Deletes `letters` without asking (the console asked already: console/letters.py); returns how many went."""
    deleted = 0
    for i in range(0, len(letters), 500):
        deleted += int(await redis.xdel(stream, *[d.id for d in letters[i:i + 500]]))
    log.warning("dead_letter.purged", count=deleted, stream=stream)
    return deleted


LIST_LIMIT = 100  # `dlq list` without --limit


async def run(settings: Settings, action: str, ids: list[str], *, replay_all: bool, limit: int | None,
              filters: Filters = Filters(), yes: bool = False, as_json: bool = False) -> int:
    """One `dlq` command. `limit` bounds list (default LIST_LIMIT), `replay --all` and purge (default: all the
    filters select, oldest first); with named ids it is refused, as it could only be a mistake."""
    if limit is not None and ids and action == "replay":
        print("dlq replay: --limit bounds --all or the filters' selection; with named ids, name fewer",
              file=sys.stderr)
        return 2
    # No connection retries: an unreachable Redis is one line from the CLI (exit 1), not five warnings first.
    redis = await connect(settings.redis_url, queue_name=settings.queue_name)
    stream = settings.dead_letter_stream
    try:
        if action == "show":
            return await _show(redis, stream, ids)
        default = LIST_LIMIT if action == "list" else 10**9
        letters = await select(redis, stream, filters, default if limit is None else limit)
        if action == "purge":
            await purge(redis, stream, letters, yes=yes)
            return 0
        if action == "list":
            print_list(letters, await redis.xlen(stream), stream, as_json=as_json)
            return 0
        return await _replay_each(redis, settings, [d.id for d in letters] if replay_all else ids)
    finally:
        await redisurl.close(redis)


def print_list(letters: list[DeadLetter], total: int, stream: str, *, as_json: bool) -> None:
    """`dlq list`: a line a letter and the count, or (`--json`) {stream, total, letters: [every field]}."""
    if as_json:
        print(json.dumps({"stream": stream, "total": total, "letters": [{
            "id": d.id, "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(d.failed_at_ms / 1000)) + "Z",
            "kind": d.kind, "call_id": d.call_id, "attempts": d.attempts, "reason": d.reason,
            "destination": destination_of(d)} for d in letters]}, indent=2))
        return
    for d in letters:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.failed_at_ms / 1000))
        print(f"{d.id}  {at}Z  {d.kind:<16} call={d.call_id}  attempts={d.attempts}  {d.reason}")
    print(f"{len(letters)} of {total} dead letter(s) in {stream}")


async def _replay_each(redis: ArqRedis, settings: Settings, chosen: list[str]) -> int:
    if not chosen:
        print("dlq replay: name entry ids, or --all", file=sys.stderr)
        return 2
    failed = 0
    for entry_id in chosen:
        try:
            done = await replay(redis, settings.dead_letter_stream, entry_id, queue_name=settings.queue_name,
                                key_prefix=settings.key_prefix, retention_s=settings.dead_letter_retention)
            print(f"{entry_id}: {done}")
        except (KeyError, ValueError) as e:
            failed += 1
            print(f"{entry_id}: not replayed ({e})", file=sys.stderr)
    return 1 if failed else 0


async def _show(redis: ArqRedis, stream: str, ids: list[str]) -> int:
    if not ids:
        print("dlq show: name an entry id (from `dlq list`)", file=sys.stderr)
        return 2
    status = 0
    for entry_id in ids:
        try:
            found = await redis.xrange(stream, min=entry_id, max=entry_id)
        except ResponseError:
            found = []
        if not found:
            print(f"{entry_id}: no such dead letter in {stream}", file=sys.stderr)
            status = 1
            continue
        print(show(entry(*found[0])))
    return status


async def _requeue_note(redis: ArqRedis, letter: DeadLetter, *, key_prefix: str) -> str:
    """A transcript reply's letter: queued again past its once-per-call mark, if its alert can still be found."""
    note = msgspec.structs.replace(decode_note(letter.payload), attempts=0)
    await redis.delete(f"{key_prefix}alert_noted:{note.call_id}")
    if not await queue_note(redis, note, policy=DeliveryPolicy(prefix=key_prefix)):
        raise ValueError("its alert's Slack message can no longer be found (no ts kept); the letter is kept")
    return f"queued the transcript reply for call {note.call_id} again"


async def replay(redis: ArqRedis, stream: str, entry_id: str, *, queue_name: str, key_prefix: str,
                 retention_s: int = DEFAULT_RETENTION_S) -> str:
    """Puts one dead letter back to work and removes it from the stream; returns what was done.

    A job's letter (its payload is the job's own argument, msgpack) is queued again: a `deliver` letter
    under the delivery's job id, any other under the letter's own id; an alert's letter (`slack_alert`,
    `teams_alert`, ...) is queued again past the one-alert-per-call gate, to the channel its kind names.
    ValueError (the letter kept) when arq refuses the job; KeyError for a letter that is not there, or past
    retention (then trimmed with the others).
    """
    if past_retention(entry_id, retention_s):
        await trim(redis, stream, retention_s)
        raise KeyError(f"{entry_id} is past the dead letters' retention ({retention_s // 86_400} days): not replayed")
    try:
        found = await redis.xrange(stream, min=entry_id, max=entry_id)
    except ResponseError as e:
        raise KeyError(f"{entry_id} is not a stream entry id") from e
    if not found:
        raise KeyError(f"no dead letter {entry_id}")
    letter = entry(*found[0])
    try:
        if letter.kind in JOB_FUNCTIONS:
            done = await _requeue(redis, letter, queue_name=queue_name, key_prefix=key_prefix)
        elif letter.kind.endswith("_alert"):  # slack_alert, teams_alert, ...: back to its channel's outbox
            channel = letter.kind.removesuffix("_alert")
            alert = decode_alert(letter.payload)
            await queue_alert(redis, alert, force=True, policy=DeliveryPolicy(prefix=key_prefix), channel=channel)
            done = f"queued the {'Slack' if channel == 'slack' else channel} alert for call {letter.call_id} again"
        elif letter.kind == "slack_note":
            done = await _requeue_note(redis, letter, key_prefix=key_prefix)
        else:
            raise ValueError(f"dead letter {letter.id} has an unknown kind {letter.kind!r}")
    except msgspec.DecodeError as e:
        raise ValueError(f"its payload does not decode ({e}); the letter is kept") from e
    await redis.xdel(stream, letter.id)
    log.info("dead_letter.replayed", entry=letter.id, kind=letter.kind, call_id=letter.call_id)
    await record.replayed(redis, key_prefix, "dead_letter", [(letter.call_id, replay_step(letter))])
    return done


def replay_step(letter: DeadLetter) -> Entry:
    """The `replay` step a replayed letter adds to its call's record (workers/operate/record.py): its kind, and for a
    delivery its destination and event."""
    step = Entry(at_ms=time.time_ns() // 1_000_000, step="replay", what="dead_letter", job=letter.kind,
                 reason=letter.reason[:300])
    if letter.kind != DELIVER:
        return step
    try:
        delivery = msgspec.msgpack.decode(letter.payload, type=Delivery)
    except msgspec.DecodeError:
        return step
    return msgspec.structs.replace(step, destination=delivery.destination, event_id=delivery.event_id)


async def _requeue(redis: ArqRedis, letter: DeadLetter, *, queue_name: str, key_prefix: str) -> str:
    """Queues the letter's job again; ValueError when arq refuses it (a job with that id exists)."""
    argument = msgspec.msgpack.decode(letter.payload)
    job_id = f"{key_prefix}replay:{letter.id}"
    if letter.kind == DELIVER:
        delivery = msgspec.convert(argument, Delivery)
        job_id = f"{key_prefix}deliver:{delivery.event_id}:{delivery.destination}"
        if not await redis.exists(job_key_prefix + job_id):  # only the failed run's result: not a job
            await redis.delete(result_key_prefix + job_id)
    if await redis.enqueue_job(letter.kind, argument, _job_id=job_id, _queue_name=queue_name) is None:
        raise ValueError(f"not queued: job {job_id} exists already (queued, running or just run); the letter is kept")
    return f"queued {letter.kind} for call {letter.call_id}"
