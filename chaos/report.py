"""What a chaos run proved: read from the run's Redis, the sandbox's webhook results and Slack's messages.

The bar (docs/chaos.md): every call whose webhook was acknowledged (answered 2xx) has exactly one
`wavix.call.completed` event; no event id is published twice; every alert goes out exactly once per
call and reason; no worker exits unless it was killed. Per destination (chaos/sinks.py), counted as a
consumer following the destination's protocol sees it: no acknowledged call's completed event missing, no
event id taken in twice, every webhook signature good. A webhook redelivery (a POST repeating a
`webhook-id`, which a Standard Webhooks consumer drops) is reported beside the bar, and fails it only if
its body differs from the first POST's: a worker killed between the endpoint's 2xx and the ledger's mark
sends again, and no sender can tell that request from one that never arrived (docs/chaos.md).

Calls whose webhooks the sandbox dropped on purpose, or that were refused (503 while Redis was down), are
counted apart: recovering them is reconciliation's job, not the queue's.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from contract.events import COMPLETED, decode_event
from sandbox.slack import Received
from sandbox.webhooks import Result

_DIGEST = re.compile(r"^(\d+) call alerts?:")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Completed(msgspec.Struct):
    """The completed events in the stream: count per call, ids seen more than once, when each call's came."""

    per_call: dict[str, int]
    per_id: dict[str, int]  # every event id in the stream, with how many entries carry it
    duplicate_ids: int
    at_ms: dict[str, int]
    alerts_expected: int


async def read_events(redis: Redis, stream: str) -> Completed:
    per_call: Counter[str] = Counter()
    ids: Counter[str] = Counter()
    at_ms: dict[str, int] = {}
    alerts = 0
    last = "-"
    while entries := await redis.xrange(stream, min=last, count=5000):
        for entry_id, fields in entries:
            event = decode_event(fields[b"event"])
            ids[event.id] += 1
            if event.type == COMPLETED:
                per_call[event.subject] += 1
                at_ms.setdefault(event.subject, int(entry_id.split(b"-")[0]))
                alerts += len(getattr(event.data, "alert_reasons", ()) or ())
        last = "(" + entries[-1][0].decode()
    return Completed(dict(per_call), dict(ids), sum(n - 1 for n in ids.values() if n > 1), at_ms, alerts)


def load_results(path: Path) -> list[Result]:
    if not path.exists():
        return []
    decode = msgspec.json.Decoder(Result).decode
    return [decode(line) for line in path.read_bytes().splitlines() if line]


def acknowledged(results: Iterable[Result]) -> tuple[set[str], set[str]]:
    """Calls with a webhook answered 2xx, and calls whose webhooks were all refused or unanswered."""
    sent, ok = set(), set()
    for r in results:
        sent.add(r.call_id)
        if r.status is not None and 200 <= r.status < 300:
            ok.add(r.call_id)
    return ok, sent - ok


def alerts_sent(messages: Sequence[Received]) -> tuple[int, int]:
    """Alerts Slack accepted (a digest counts its calls) and call ids named in more than one message."""
    total = 0
    for received in messages:
        digest = _DIGEST.match(_text(received))
        total += int(digest.group(1)) if digest else 1
    return total, len(alerted_twice(messages))


def alerted_twice(messages: Sequence[Received]) -> list[str]:
    """The call ids named in more than one message Slack accepted."""
    named = Counter[str]()
    for received in messages:
        named.update(set(_UUID.findall(str(received.message))))
    return sorted(call for call, n in named.items() if n > 1)


def _text(received: Received) -> str:
    return str(received.message.get("text", "")) if isinstance(received.message, dict) else ""


def p99(values: Sequence[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[98], 2)


def verdict(figures: dict[str, Any]) -> list[str]:
    """The bar's failures, in words; empty when the run passed."""
    failures = []
    if figures["acknowledged_with_one_completed_pct"] != 100.0:
        failures.append(f"acknowledged calls without exactly one completed event: {figures['acknowledged_missing']}")
    if figures["duplicate_event_ids"]:
        failures.append(f"event ids published twice: {figures['duplicate_event_ids']}")
    if figures["alerts_sent"] != figures["alerts_expected"] or figures["calls_alerted_twice"]:
        failures.append(f"alerts sent {figures['alerts_sent']} for {figures['alerts_expected']} expected, "
                        f"{figures['calls_alerted_twice']} calls alerted twice")
    failures += destination_failures(figures.get("destinations", {}))
    if figures["worker_unexpected_exits"]:
        failures.append(f"workers exited unexpectedly: {figures['worker_unexpected_exits']}")
    return failures


def destination_failures(destinations: dict[str, dict[str, Any]]) -> list[str]:
    failures = []
    for name, line in destinations.items():
        if line["missing"]:
            failures.append(f"{name}: acknowledged calls' completed events missing: {line['missing']}")
        if line["duplicates"]:
            failures.append(f"{name}: event ids taken in more than once: {line['duplicates']}")
        if line.get("bad_signatures"):
            failures.append(f"{name}: POSTs with a bad signature: {line['bad_signatures']}")
        if line.get("redelivered_changed"):
            failures.append(f"{name}: redeliveries whose body differs from the first POST's: "
                            f"{line['redelivered_changed']}")
    return failures


def destination_table(destinations: dict[str, dict[str, Any]]) -> str:
    """One line per destination: taken in, distinct ids, ids taken in twice or more, missing, and the
    redeliveries its consumer dropped by id (where the run can see them: the webhook endpoint)."""
    head = f"{'destination':<12}{'taken in':>10}{'distinct':>10}{'duplicates':>12}{'missing':>9}{'redelivered':>13}"
    lines = [head] + [f"{name:<12}{d['received']:>10}{d['distinct']:>10}{d['duplicates']:>12}{d['missing']:>9}"
                      f"{d.get('redelivered', '-')!s:>13}" for name, d in destinations.items()]
    return "\n".join(lines)


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("calls placed", "calls"),
        ("webhooks dropped on purpose (calls)", "calls_dropped"),
        ("calls refused or unanswered (503 while Redis was down)", "calls_unacknowledged"),
        ("acknowledged calls", "calls_acknowledged"),
        ("acknowledged calls with exactly one completed event, %", "acknowledged_with_one_completed_pct"),
        ("duplicate event ids", "duplicate_event_ids"),
        ("alerts sent / expected (one per call and reason)", "alerts"),
        ("calls alerted twice", "calls_alerted_twice"),
        ("webhook redeliveries (same webhook-id, dropped) / bad signatures", "webhook_repeats"),
        ("deliveries still pending at the end (leases, deliver jobs)", "pending_deliveries"),
        ("workers killed (-9) / unexpected exits", "workers"),
        ("Redis restarts: graceful / kill -9", "redis"),
        ("worker outage lines: lost / back", "outage_lines"),
        ("calls in flight at a kill: kill -> event p99, s", "held_p99_s"),
        ("run, s", "seconds"),
    ]
    width = max(len(label) for label, _ in rows)
    main = "\n".join(f"{label:<{width}}  {figures.get(key)!s:>12}" for label, key in rows)
    return f"{main}\n\n{destination_table(figures.get('destinations', {}))}"


def conclude(figures: dict[str, Any], results: Path, *, name: str, judge: Callable[[dict[str, Any]], list[str]],
             draw: Callable[[dict[str, Any]], str]) -> int:
    """The end of a run (`make chaos`, `make chaos-ha`): judged against the bar, written to `results`, the table
    printed, each failure on stderr; the exit status (1 when the bar was missed)."""
    failures = judge(figures)
    figures["passed"] = not failures
    results.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(draw(figures))
    print(f"written to {results}")
    for failure in failures:
        print(f"{name}: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0
