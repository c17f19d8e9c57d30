"""What the several-host run proved: counted per destination as `make chaos` counts (chaos/report.py, sinks.py).

One difference in the bar: `make chaos` holds every *acknowledged* call to exactly one completed event and
counts the rest apart; here every call the Wavix host *placed* must have exactly one, at each destination,
reconciliation included: a webhook dropped on purpose, answered 503 while no primary answered, or acknowledged
by a primary killed before it replicated is only recovered by reconciliation's listing. The calls it brought
back are read from the workers' `reconcile.missed_webhook` lines and split by what had happened to their
webhooks. Per fault (chaos/ha/faults.py), the calls it touched are those in flight at its start and those whose
first webhook went out while it lasted; the time from the fault to the last of their completed events (the
Redis Stream entry's time) is printed and stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chaos import report, sinks
from chaos.ha.cluster import Cluster
from chaos.ha.faults import Fault
from chaos.run import pending_deliveries
from contract import redisurl
from contract.events import COMPLETED, event_id
from sandbox.webhooks import Result

STREAM = "wavix:events"
MISSED = "reconcile.missed_webhook"


def reconciled(logs: Iterable[Path]) -> set[str]:
    """Calls reconciliation queued (a missed webhook), from the workers' JSON log lines."""
    calls = set()
    for path in logs:
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if MISSED in line:
                with suppress(ValueError, KeyError, TypeError):
                    calls.add(str(json.loads(line)["call_id"]))
    return calls


def first_sent(results: Iterable[Result]) -> dict[str, float]:
    first: dict[str, float] = {}
    for r in results:
        first[r.call_id] = min(r.sent_at, first.get(r.call_id, r.sent_at))
    return first


def sent_during(fault: Fault, first: dict[str, float]) -> set[str]:
    return {call for call, at in first.items() if fault.at <= at <= fault.over}


def fault_line(fault: Fault, first: dict[str, float], arrived: dict[str, float]) -> dict[str, Any]:
    """One fault: how long it lasted, the calls it touched, and the time from it to their last event."""
    during = sent_during(fault, first)
    touched = set(fault.in_flight) | during
    times = [arrived[call] for call in touched if call in arrived]
    return {"fault": fault.name, "lasted_s": round(fault.over - fault.at, 2), "in_flight": len(set(fault.in_flight)),
            "sent_during": len(during), "never_arrived": len(touched - arrived.keys()),
            "to_last_event_s": round(max(times) - fault.at, 2) if times else None, **fault.notes}


def untouched(faults: Sequence[Fault], first: dict[str, float], arrived: dict[str, float]) -> dict[str, Any]:
    """The baseline the faults' times compare with: calls no fault touched, first webhook -> completed event
    (the sandbox's own faults, 12 s slow answers and retried 429s and 5xx, make its tail)."""
    touched = set().union(*(set(f.in_flight) | sent_during(f, first) for f in faults))
    waits = [arrived[call] - at for call, at in first.items() if call in arrived and call not in touched]
    return {"calls": len(waits), "p99_s": report.p99(waits), "max_s": round(max(waits), 2) if waits else None}


def split(back: set[str], results: Sequence[Result]) -> dict[str, int]:
    """The reconciled calls by what had happened to their webhooks."""
    ok, refused = report.acknowledged(results)
    return {"total": len(back), "never_sent": len(back - ok - refused), "refused_or_unanswered": len(back & refused),
            "acknowledged_then_lost": len(back & ok)}


async def _read(c: Cluster) -> tuple[report.Completed, int | None]:
    dest = Redis.from_url(c.dest.url)
    try:
        events = await report.read_events(dest, STREAM)
    finally:
        await dest.aclose()
    main = redisurl.client(c.redis.url)
    try:
        pending: int | None = await pending_deliveries(main)
    except (RedisError, OSError):
        pending = None  # no primary answers just now: not yet drained
    finally:
        await redisurl.close(main)
    return events, pending


async def measure(c: Cluster, faults: Sequence[Fault]) -> dict[str, Any]:
    events, pending = await _read(c)
    placed_path = c.workdir / "placed.txt"
    placed = placed_path.read_text().split() if placed_path.exists() else []
    results = report.load_results(c.results_path)
    ok, refused = report.acknowledged(results)
    missing = sorted(call for call in placed if events.per_call.get(call) != 1)
    expected = [event_id(call, COMPLETED) for call in placed]
    sent, twice = report.alerts_sent(c.slack.accepted())
    hooks = c.hooks
    destinations = {
        "redis": sinks.figures(events.per_id, expected),
        "webhook": {**sinks.figures(hooks.per_event, expected), "bad_signatures": hooks.bad_signatures,
                    "redelivered": hooks.redelivered, "redelivered_changed": hooks.redelivered_changed},
        "nats": sinks.figures(await c.stream.per_event(), expected),
    }
    for line in destinations.values():
        line["expected"] = len(expected)
    arrived = {call: ms / 1000 for call, ms in events.at_ms.items()}
    balancer = c.workdir / "balancer.json"
    down = sorted(name for name, up in c.alive().items() if not up)
    first = first_sent(results)
    return {
        "calls_placed": len(placed), "calls_acknowledged": len(ok), "calls_refused_or_unanswered": len(refused),
        "calls_never_sent": len(placed) - len(ok | refused) if placed else None,
        "placed_with_one_completed_pct": round(100 * (len(placed) - len(missing)) / max(1, len(placed)), 2),
        "placed_missing": missing[:20], "placed_missing_count": len(missing),
        "duplicate_event_ids": events.duplicate_ids, "destinations": destinations, "pending_deliveries": pending,
        "reconciled": split(reconciled(w.log for w in c.workers), results),
        "alerts_sent": sent, "alerts_expected": events.alerts_expected, "calls_alerted_twice": twice,
        "alerted_twice": report.alerted_twice(c.slack.accepted())[:20],
        "balancer": json.loads(balancer.read_text()) if balancer.exists() else None,
        "killed_by_plan": sum(f.name != "cut_worker" for f in faults), "unexpected_exits": dict(c.unexpected),
        "down_at_end": down,
        "faults": [fault_line(f, first, arrived) for f in faults], "untouched": untouched(faults, first, arrived),
    }


def drained(figures: dict[str, Any]) -> bool:
    """Every placed call's event at every destination, every alert out, no delivery in flight or queued."""
    return (figures["calls_placed"] > 0 and not any(d["missing"] for d in figures["destinations"].values())
            and figures["alerts_sent"] >= figures["alerts_expected"] and figures["pending_deliveries"] == 0)


def verdict(figures: dict[str, Any]) -> list[str]:
    """The bar's failures, in words; empty when the run passed."""
    failures = []
    if figures["placed_missing_count"] or not figures["calls_placed"]:
        failures.append(f"placed calls without exactly one completed event: {figures['placed_missing_count']} "
                        f"of {figures['calls_placed']}, e.g. {figures['placed_missing'][:5]}")
    if figures["duplicate_event_ids"]:
        failures.append(f"event ids published twice: {figures['duplicate_event_ids']}")
    if figures["alerts_sent"] != figures["alerts_expected"] or figures["calls_alerted_twice"]:
        failures.append(f"alerts sent {figures['alerts_sent']} for {figures['alerts_expected']} expected, "
                        f"{figures['calls_alerted_twice']} calls alerted twice")
    failures += report.destination_failures(figures["destinations"])
    if figures["unexpected_exits"]:
        failures.append(f"processes that exited when nobody killed them: {figures['unexpected_exits']}")
    if figures["down_at_end"]:
        failures.append(f"processes down at the end: {figures['down_at_end']}")
    if figures["pending_deliveries"] != 0:
        failures.append(f"deliveries still pending at the end: {figures['pending_deliveries']}")
    return failures


def _rows(f: dict[str, Any]) -> list[tuple[str, object]]:
    back, balancer = f["reconciled"], f["balancer"] or {}
    return [
        ("calls placed (the Wavix host)", f["calls_placed"]),
        ("calls whose webhook was never sent (dropped on purpose)", f["calls_never_sent"]),
        ("calls whose webhooks got no 2xx (503, or no answer)", f["calls_refused_or_unanswered"]),
        ("calls acknowledged (a webhook answered 2xx)", f["calls_acknowledged"]),
        ("reconciled: all / never sent / no 2xx / acknowledged, then lost",
         f"{back['total']} / {back['never_sent']} / {back['refused_or_unanswered']} / "
         f"{back['acknowledged_then_lost']}"),
        ("placed calls with exactly one completed event, %", f["placed_with_one_completed_pct"]),
        ("duplicate event ids", f["duplicate_event_ids"]),
        ("alerts sent / expected; calls alerted twice",
         f"{f['alerts_sent']} / {f['alerts_expected']}; {f['calls_alerted_twice']}"),
        ("webhook POSTs passed to the other receiver / answered by none",
         f"{balancer.get('rerouted')} / {balancer.get('unanswered')}"),
        ("deliveries still pending at the end", f["pending_deliveries"]),
        ("calls no fault touched: first webhook -> event, p99 / max, s",
         f"{f['untouched']['p99_s']} / {f['untouched']['max_s']}"),
        ("processes killed by the plan / exits nobody asked for / down at end",
         f"{f['killed_by_plan']} / {sum(f['unexpected_exits'].values())} / {len(f['down_at_end'])}"),
        ("run, s (hosts built to hosts removed)", f.get("seconds")),
    ]


def destination_table(destinations: dict[str, dict[str, Any]]) -> str:
    head = f"{'destination':<12}{'expected':>10}{'got':>8}{'missing':>9}{'twice':>7}{'redelivered':>13}"
    return "\n".join([head] + [f"{name:<12}{d['expected']:>10}{d['distinct']:>8}{d['missing']:>9}"
                               f"{d['duplicates']:>7}{d.get('redelivered', '-')!s:>13}"
                               for name, d in destinations.items()])


def fault_table(faults: Sequence[dict[str, Any]]) -> str:
    head = f"{'fault':<20}{'lasted, s':>10}{'in flight':>11}{'sent during':>13}{'fault -> last event, s':>24}"
    return "\n".join([head] + [f"{x['fault']:<20}{x['lasted_s']:>10}{x['in_flight']:>11}{x['sent_during']:>13}"
                               f"{x['to_last_event_s']!s:>24}" for x in faults])


def table(figures: dict[str, Any]) -> str:
    rows = _rows(figures)
    width = max(len(label) for label, _ in rows)
    main = "\n".join(f"{label:<{width}}  {value!s:>16}" for label, value in rows)
    return (f"{main}\n\n{destination_table(figures['destinations'])}\n\n{fault_table(figures['faults'])}")
