"""How `wavix-events destinations` shows each destination's health (workers/deliver/health.py): three ways.

    a table            when the terminal is wide enough for it whole (about 140-220 columns, by name and values)
    a block each       otherwise, one value a line, so 80 columns read as well as 200; no cell squeezed to `…`
    JSON (`--json`)    every field, times as ISO 8601 UTC (null: never), for scripts

The state is decided once (`state`): paused, else failing (a failure since the last success), else ok.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from workers.deliver.health import Health
from workers.deliver.route import Destination

_COLOUR = {"ok": "green", "failing": "red", "paused": "yellow"}


def state(h: Health) -> str:
    return "paused" if h.paused else "failing" if h.streak else "ok"


def when(ms: int, now_ms: int) -> str:
    """`06-30 09:00:00Z (5m ago)`, or `-` for never."""
    if not ms:
        return "-"
    age = max(now_ms - ms, 0) // 1000
    ago = f"{age}s" if age < 120 else f"{age // 60}m" if age < 7200 else f"{age // 3600}h"
    return f"{time.strftime('%m-%d %H:%M:%S', time.gmtime(ms / 1000))}Z ({ago} ago)"


def iso(ms: int) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z" if ms else None


def _rate(d: Destination) -> str:
    return f"{d.max_per_second:g}" if d.max_per_second else "-"


def span(seconds: float | None) -> str:
    """A destination's `disable_after` as the routing file writes it: `5d`, `36h`, `90s`; `never` for 0."""
    if not seconds:
        return "never"
    whole = int(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{seconds:g}s"


def table(rows: Sequence[Health], destinations: Sequence[Destination], now: int) -> Table:
    out = Table(title="destinations", title_justify="left")
    for column in ("destination", "state", "failing since", "failures", "last success", "backlog", "oldest",
                   "parked", "dead letters", "retry schedule", "max/s", "disable"):
        out.add_column(column, no_wrap=column in ("destination", "state"))
    for h, d in zip(rows, destinations, strict=True):
        out.add_row(h.name, f"[{_COLOUR[state(h)]}]{state(h)}[/]", when(h.failing_since_ms, now), str(h.streak),
                    when(h.last_success_ms, now), str(h.backlog), when(h.oldest_ms, now), str(h.parked),
                    str(h.dead_letters), d.retry.describe(), _rate(d), span(d.disable_after_s))
    return out


def block(h: Health, d: Destination, now: int) -> list[str]:
    """One destination, a value a line: its name and state first, then what an operator looks at next."""
    head = f"{h.name}  {state(h)}"
    if h.paused:
        head += f" since {when(h.paused_since_ms, now)}"
    if h.streak:
        head += f": {h.streak} failures since {when(h.failing_since_ms, now)}"
    oldest = f", oldest {when(h.oldest_ms, now)}" if h.backlog and h.oldest_ms else ""
    rate = f" · max {_rate(d)}/s" if d.max_per_second else ""
    lines = [head, f"  last success {when(h.last_success_ms, now)}",
             f"  backlog {h.backlog}{oldest} · parked {h.parked} · dead letters {h.dead_letters}",
             f"  retry {d.retry.describe()}{rate} · disable after {span(d.disable_after_s)}"]
    return lines + ([f"  last error: {h.last_error}"] if h.streak and h.last_error else [])


def show(console: Console, rows: Sequence[Health], destinations: Sequence[Destination], now: int) -> None:
    """The table when it fits the console whole, else a block each."""
    wide = table(rows, destinations, now)
    if Measurement.get(console, console.options.update_width(10_000), wide).maximum <= console.width:
        console.print(wide)
        for h in rows:
            if h.streak and h.last_error:
                console.print(f"{h.name}: last error: {h.last_error}", markup=False, highlight=False)
        return
    for i, (h, d) in enumerate(zip(rows, destinations, strict=True)):
        for line in ([""] if i else []) + block(h, d, now):
            console.print(line, markup=False, highlight=False, overflow="fold")


def as_json(rows: Sequence[Health], destinations: Sequence[Destination]) -> list[dict[str, Any]]:
    """Every field of every destination, times as ISO 8601 UTC (None: never)."""
    return [{
        "name": h.name, "state": state(h), "failures": h.streak, "failing_since": iso(h.failing_since_ms),
        "last_success": iso(h.last_success_ms), "last_failure": iso(h.last_failure_ms), "last_error": h.last_error,
        "delivered": h.delivered, "failed": h.failed, "dead_letters": h.dead_letters,
        "paused_since": iso(h.paused_since_ms), "backlog": h.backlog, "oldest": iso(h.oldest_ms), "parked": h.parked,
        "retry_schedule": d.retry.describe(), "max_per_second": d.max_per_second or None,
        "disable_after_s": d.disable_after_s,  # 0: never
    } for h, d in zip(rows, destinations, strict=True)]
