"""Trace: one call's timeline, read from both halves of its record (contract/record.py), and printed.

    webhooks:{call}  the receiver's half (and `webhooks:<account>/{call}` for each account: contract/accounts.py):
                     each webhook by kind and source, judged here as it was judged then
                     (the first of a dedup key is accepted, the next ones duplicates; progress events are
                     recorded; a call found by listing is "reconciled")
    record:{call}    the workers' half: job tries, fetches, events, deliveries, alerts, dead letters, and
                     the operator's replays

A step is fine, failed (`ok` False: "!" in the text, red on the page) or an expected wait (`wait`: a
transcript or CDR not there yet, a rate limit: "~"). A try says how long it took and, when it will run
again, after how long: "fetch_transcript try 1 failed after 8 ms: ...; next try in 30 s". Delivery tries are
numbered as their destination counts them, the count a dead letter gives.

One read of two lists and the summary (a pipelined round trip), merged by time. `wavix-events trace CALL_ID`
prints it (`--json` for machines); the console's call page shows the same `Step`s. The call's account (issue
#26) is its summary's; before there is one, the account of its webhooks' receipts (several, comma-separated,
when another account's token posted the call too).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from contract import redisurl
from contract.intake import scoped
from contract.jobs import Receipt
from contract.record import CallSummary, Entry, decode_entry, decode_summary, latency_ms, record_key, summary_key
from contract.webhooks import classify, webhooks_key

_RECEIPT = msgspec.msgpack.Decoder(Receipt)


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the timeline: when, which step, whether it went well, a sentence, and the raw fields."""

    at_ms: int
    step: str
    ok: bool
    text: str
    fields: dict[str, Any]
    wait: bool = False  # an expected wait: neither done nor failed


class Timeline(msgspec.Struct, frozen=True, kw_only=True):
    call_id: str
    steps: list[Step]
    summary: CallSummary | None = None
    account: str = ""  # "" when nothing of the call is kept


async def read(redis: Redis, key_prefix: str, call_id: str, accounts: Sequence[str] = ()) -> Timeline:
    """The call's timeline, oldest first; empty when nothing of the call is kept (expired, or never seen).
    `accounts`: the configured accounts, whose webhook lists of the call are read too (contract/intake.scoped)."""
    pipe = redis.pipeline(transaction=False)
    pipe.lrange(record_key(key_prefix, call_id), 0, -1)
    pipe.get(summary_key(key_prefix, call_id))
    for key in dict.fromkeys([call_id, *(scoped(a, call_id) for a in accounts)]):
        pipe.lrange(webhooks_key(key_prefix, key), 0, -1)
    entries, summary, *lists = await pipe.execute()
    steps = webhook_steps([w for webhooks in lists for w in webhooks]) + [entry_step(decode_entry(raw))
                                                                          for raw in entries]
    steps.sort(key=lambda s: s.at_ms)
    indexed = decode_summary(summary) if summary else None
    posted = dict.fromkeys(s.fields["account"] for s in steps if s.step == "webhook")
    account = indexed.account if indexed is not None else ", ".join(posted)
    return Timeline(call_id=call_id, steps=steps, summary=indexed, account=account)


def webhook_steps(raw: list[bytes]) -> list[Step]:
    seen: set[str] = set()
    steps = []
    for item in raw:
        try:
            receipt = _RECEIPT.decode(item)
        except msgspec.DecodeError:
            continue
        status = "recorded"
        try:
            webhook = classify(receipt.body)
        except Exception:  # a listed call carries no body: it was queued, the list only keeps queued ones
            webhook = None
        if receipt.source != "webhook":
            status = "reconciled" if receipt.source == "reconcile" else receipt.source
            seen.add(f"{receipt.kind}:{receipt.call_id}")
        elif webhook is not None and webhook.starts_work:
            status = "duplicate" if webhook.dedup_key in seen else "accepted"
            seen.add(webhook.dedup_key)
        fields = {"kind": str(receipt.kind), "event": receipt.event, "source": receipt.source, "status": status,
                  "account": receipt.account}
        text = f"{receipt.kind} {receipt.event or '-'} via {receipt.source}: {status}"
        steps.append(Step(at_ms=receipt.received_at_ms, step="webhook", ok=True, text=text, fields=fields))
    return steps


def entry_step(entry: Entry) -> Step:
    fields = {k: v for k, v in msgspec.structs.asdict(entry).items() if k not in ("at_ms", "step", "ok", "wait")
              and v}
    return Step(at_ms=entry.at_ms, step=entry.step, ok=entry.ok, wait=entry.wait, text=_sentence(entry),
                fields=fields)


def duration(ms: float) -> str:
    """`8 ms`, `1.5 s`, `30 s`, `1 min 35 s`, `2 h 5 min`: as a person would say it."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {s} s" if s else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def _try(e: Entry) -> str:
    return f"try {e.attempt}" + (" (replay)" if e.source == "replay" else "")


def _job(e: Entry) -> str:
    name = f"{e.job} {e.destination} {_try(e)}" if e.destination else f"{e.job} {_try(e)}"
    then = f"; next try in {duration(e.next_ms)}" if e.next_ms else "; next try at once"
    if e.outcome == "retry" and e.wait:
        return f"{name}: {e.reason}{then} (took {duration(e.ms)})"
    if e.outcome == "retry":
        return f"{name} failed after {duration(e.ms)}: {e.reason}{then}"
    if not e.ok:
        return f"{name} ended after {duration(e.ms)}: {e.outcome}"
    return f"{name}: {e.outcome} in {duration(e.ms)}"


def _delivery(e: Entry) -> str:
    where = f"{e.event_type} -> {e.destination} {_try(e)}"
    if e.ok:
        return f"{where}: {e.outcome} in {duration(e.ms)}"
    return f"{where} failed after {duration(e.ms)}: {e.outcome}" + (f" ({e.reason})" if e.reason else "")


def _replay(e: Entry) -> str:
    if e.what == "dead_letter":
        towards = f" to {e.destination}" if e.destination else ""
        return f"dead letter ({e.job}{towards}) replayed by an operator: queued again"
    return f"replay of {e.event_type} {e.event_id} to {e.destination} queued by an operator"


def _sentence(e: Entry) -> str:
    if e.step == "job":
        return _job(e)
    if e.step == "fetch":
        said = f", {e.what} not ready yet" if e.wait else ""
        return f"GET {e.what}: {e.status}{said} ({duration(e.ms)})"
    if e.step == "event":
        return f"{e.event_type} {e.event_id}"
    if e.step == "delivery":
        return _delivery(e)
    if e.step == "alert":
        return f"Slack alert queued: {e.reason}"
    if e.step == "dead_letter":
        return f"dead letter ({e.what}) after {e.attempt} tries: {e.reason}"
    if e.step == "replay":
        return _replay(e)
    return e.step


def clock(at_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at_ms / 1000)) + f".{at_ms % 1000:03d}Z"


def summary_line(s: CallSummary) -> str:
    """The call as the index keeps it, written once: first seen, and webhook to event (contract/record.py)."""
    latency = latency_ms(s)
    took = f", event published {duration(latency)} after" if latency is not None else ""
    alerted = f", alerted: {', '.join(s.alert_reasons)}" if s.alerted else ""
    return f"{s.direction} {s.outcome}, found by {s.found_by}, first seen {clock(s.at_ms)}{took}{alerted}"


def render_text(timeline: Timeline) -> str:
    if not timeline.steps:
        return f"call {timeline.call_id}: nothing kept (never seen here, or older than WEBHOOK_DEDUP_TTL)\n"
    first = timeline.steps[0].at_ms
    lines = [f"call {timeline.call_id}" + (f" (account {timeline.account})" if timeline.account else "")]
    if timeline.summary is not None:
        lines.append("  " + summary_line(timeline.summary))
    for step in timeline.steps:
        mark = "~" if step.wait else " " if step.ok else "!"
        lines.append(f"{clock(step.at_ms)} {(step.at_ms - first) / 1000:+9.3f}s {mark} {step.step:<11} {step.text}")
    return "\n".join(lines) + "\n"


def render_json(timeline: Timeline) -> bytes:
    return msgspec.json.encode(timeline) + b"\n"


async def run(redis_url: str, key_prefix: str, call_id: str, *, as_json: bool, accounts: Sequence[str] = ()) -> int:
    """`wavix-events trace CALL_ID`: 0 when something is kept of the call, 1 when nothing is."""
    redis = redisurl.client(redis_url)
    try:
        timeline = await read(redis, key_prefix, call_id, accounts)
    finally:
        await redisurl.close(redis)
    if as_json:
        sys.stdout.buffer.write(render_json(timeline))
        sys.stdout.flush()
    else:
        sys.stdout.write(render_text(timeline))
    return 0 if timeline.steps else 1
