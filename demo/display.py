"""What the demo shows: a live panel while it runs, then a summary table, two examples and a result line.

The panel and the table are built from one `Snapshot`, so what scrolls by and what is summed up agree.
The last line (`DEMO RESULT key=value ...`) is for machines: the tests parse it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from contract.events import COMPLETED, TRANSCRIBED, UNAVAILABLE
from demo.processes import DIGEST_THRESHOLD
from demo.traffic import WebhookTally
from demo.watch import Alerts, Outcomes, percentile
from sandbox.slack import render_text


@dataclass
class Snapshot:
    """Everything known at one moment of the run."""

    run_id: str
    calls: int
    elapsed_s: float
    tally: WebhookTally
    outcomes: Outcomes
    alerts: Alerts
    api_answers: int
    api_faults: int
    dropped: int = 0  # calls whose webhooks the sandbox never sent

    def latency(self, share: float) -> float | None:
        return percentile(self.outcomes.latencies_ms(self.tally.accepted_at), share)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def _answers(tally: WebhookTally) -> str:
    errors = sum(n for k, n in tally.answers.items() if k not in ("accepted", "duplicate", "ignored"))
    a = tally.answers
    return f"accepted {a['accepted']} · duplicate {a['duplicate']} · ignored {a['ignored']} · errors {errors}"


def _alerts_line(alerts: Alerts, waiting: int) -> str:
    line = f"{alerts.singles} single · {alerts.digests} digests ({alerts.digested} calls) · {waiting} waiting"
    return line + (f" · Slack said 429 to {alerts.rate_limited} (resent)" if alerts.rate_limited else "")


def _bar(done: int, total: int, label: str, details: str) -> Group:
    """A progress bar with its count on one line, the details under it."""
    line = Table.grid(padding=(0, 1))
    line.add_row(ProgressBar(total=max(total, 1), completed=done, width=40), f"{done}/{total} {label}")
    return Group(line, Text(details, style="dim"))


def live_panel(snap: Snapshot) -> Panel:
    """The refreshing view: progress bars for webhooks and calls, then the counts that matter."""
    o, t = snap.outcomes, snap.tally
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Webhooks", _bar(t.sent, t.planned, "sent", _answers(t)))
    grid.add_row("Events", _bar(len(o.completed), snap.calls, "calls completed",
                                f"transcribed {o.by_type[TRANSCRIBED]} · transcription unavailable "
                                f"{o.by_type[UNAVAILABLE]} · queued jobs {o.queued_jobs}"))
    grid.add_row("Alerts", _alerts_line(snap.alerts, o.pending_alerts))
    grid.add_row("Wavix API", f"{snap.api_answers} answers · {snap.api_faults} faults injected (429/5xx), retried")
    grid.add_row("Dead letters", str(o.dead_letters))
    title = f"wavix-events demo · run {snap.run_id} · {snap.elapsed_s:.0f} s"
    return Panel(grid, title=title, title_align="left", border_style="cyan")


def progress_line(snap: Snapshot) -> str:
    """The same facts on one line, for a terminal without live display (or a log)."""
    o, t = snap.outcomes, snap.tally
    return (f"[{snap.elapsed_s:4.0f} s] webhooks {t.sent}/{t.planned} ({_answers(t)}); completed "
            f"{len(o.completed)}/{snap.calls}; transcribed {o.by_type[TRANSCRIBED]}; unavailable "
            f"{o.by_type[UNAVAILABLE]}; alerts {snap.alerts.delivered}; dead letters {o.dead_letters}")


def summary_table(snap: Snapshot) -> Table:
    o, t, a = snap.outcomes, snap.tally, snap.alerts
    table = Table(title="Summary", title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(style="dim")
    table.add_row("Calls placed", str(snap.calls), "by the Wavix sandbox")
    table.add_row("Webhooks sent", str(t.sent), "on-call, post-call, transcription; 10% sent twice, 10% drifted")
    table.add_row("  accepted", str(t.answers["accepted"]), "one per call, one per transcript: queued for the worker")
    table.add_row("  deduplicated", str(t.answers["duplicate"]), "the same call again: 200, nothing queued")
    table.add_row("  ignored", str(t.answers["ignored"]), "progress events (setup, ringing, answered)")
    table.add_row("  never sent", str(snap.dropped), "calls whose webhooks Wavix lost (the sandbox drops them)")
    table.add_row("Recovered by reconciliation", f"{len(o.recovered)} of {snap.dropped}",
                  "found in Wavix's CDR list: found_by=reconcile")
    table.add_row("Events published", str(sum(o.by_type.values())), "CloudEvents on the Redis Stream")
    table.add_row("  direction unknown", str(o.direction_unknown), "completed calls whose direction nothing said "
                  "(must be 0: the sandbox knows every one)")
    table.add_row("  anomalies", str(o.anomalies), "values published as null or unknown, raw value kept in the event")
    for kind in (COMPLETED, TRANSCRIBED, UNAVAILABLE):
        table.add_row(f"  {kind}", str(o.by_type[kind]), "one per call" if kind == COMPLETED else "")
    table.add_row("Slack alerts", str(a.delivered), f"failed or machine-answered calls, {o.alerts_expected} expected")
    table.add_row("  single messages", str(a.singles), "one call each")
    grouped = f"{a.digested} calls in them: one message when over {DIGEST_THRESHOLD} wait"
    table.add_row("  digests", str(a.digests), grouped)
    table.add_row("Dead letters", str(o.dead_letters), "jobs given up on (see `wavix-events dlq`)")
    table.add_row("Wavix API faults", str(snap.api_faults), f"of {snap.api_answers + snap.api_faults} requests; "
                  "retried with backoff")
    table.add_row("Webhook → event", f"p50 {_ms(snap.latency(0.5))}", f"p99 {_ms(snap.latency(0.99))}")
    table.add_row("Time", f"{snap.elapsed_s:.1f} s", "")
    return table


def show_examples(console: Console, snap: Snapshot) -> None:
    """One enriched event as published, and one Slack alert as a person would read it."""
    if snap.outcomes.example is not None:
        text = json.dumps(json.loads(snap.outcomes.example), indent=2)
        console.print(Panel(Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True),
                            title=f"An enriched event, as published ({COMPLETED})", title_align="left"))
    console.print("Consume events yourself: examples/ has a consumer per destination kind (examples/README.md); "
                  "`make demo` with `--console` keeps the run's stream and the console open to try them.",
                  highlight=False)
    message: dict[str, Any] | None = snap.alerts.example_single or snap.alerts.example_digest
    if message is not None:
        rendered = Text.from_markup(escape(render_text(message)), emoji=True)  # :x: as Slack shows it
        console.print(Panel(rendered, title="A Slack alert, as the stand-in received it",
                            title_align="left", border_style="yellow"))


def verdict(snap: Snapshot, status: str, leftover_keys: int, log_dir: Path) -> str:
    """One sentence (rich markup) on how the run ended."""
    missing = snap.calls - len(snap.outcomes.completed)
    if status == "ok":
        return (f"[green]Every call produced its completed event.[/] Run {snap.run_id}: {leftover_keys} keys left "
                "in Redis, no process left running.")
    if status == "interrupted":
        return (f"[yellow]Interrupted[/] with {missing} of {snap.calls} calls not yet completed; roles stopped, "
                f"{leftover_keys} keys left in Redis.")
    return (f"[red]Not every call completed:[/] {missing} of {snap.calls} without a completed event (dead letters: "
            f"{snap.outcomes.dead_letters}). Logs of the roles: {log_dir}")


def result_line(snap: Snapshot, *, status: str, **extra: object) -> str:
    """`DEMO RESULT key=value ...`: one line with the figures the tests check."""
    o, t, a = snap.outcomes, snap.tally, snap.alerts
    fields: dict[str, object] = {
        "run": snap.run_id, "calls": snap.calls, "completed": len(o.completed),
        "transcribed": o.by_type[TRANSCRIBED], "unavailable": o.by_type[UNAVAILABLE],
        "webhooks": t.sent, "accepted": t.answers["accepted"], "accepted_calls": len(t.accepted_at),
        "duplicate": t.answers["duplicate"],
        "alerts": a.delivered, "alert_singles": a.singles, "alert_digests": a.digests,
        "dead_letters": o.dead_letters, "dropped": snap.dropped, "recovered": len(o.recovered),
        "direction_unknown": o.direction_unknown, "anomalies": o.anomalies,
        "p50_ms": round(snap.latency(0.5) or 0), "p99_ms": round(snap.latency(0.99) or 0),
        **extra, "status": status,
    }
    return "DEMO RESULT " + " ".join(f"{k}={v}" for k, v in fields.items())
