"""Charts drawn on the server as SVG text: no JavaScript, nothing fetched, readable without a browser's help.

    per_minute_bars   calls per minute, stacked by outcome, over the overview's window
    latency_bars      webhook-to-event latency, as a histogram on fixed, roughly doubling buckets

Colours are fixed per outcome so the legend means the same on every page. Values are escaped; only numbers
and known words reach the markup.
"""

from __future__ import annotations

import time
from collections import Counter
from html import escape

# One colour per `contract.values.Outcome`, in that order (a test keeps the two in step).
COLOURS = {
    "answered_human": "#2e7d32", "answered_machine": "#8e24aa", "answered_unknown": "#66bb6a",
    "no_answer": "#f9a825", "busy": "#ef6c00", "failed": "#c62828", "unknown": "#757575",
}
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)
WIDTH, HEIGHT, PAD = 720, 180, 28


def colour(outcome: str) -> str:
    return COLOURS.get(outcome, "#455a64")


def per_minute_bars(per_minute: dict[int, Counter[str]], minutes: int, now_ms: int) -> str:
    """Stacked bars, one per minute of the last `minutes`, oldest on the left."""
    first = (now_ms // 60_000 - minutes + 1) * 60_000
    columns = [per_minute.get(first + i * 60_000, Counter()) for i in range(minutes)]
    top = max([sum(c.values()) for c in columns] + [1])
    step = (WIDTH - PAD) / minutes
    parts = [_frame("Calls per minute by outcome", top)]
    for i, column in enumerate(columns):
        y = float(HEIGHT - PAD)
        for outcome in sorted(column):
            h = (HEIGHT - 2 * PAD) * column[outcome] / top
            y -= h
            parts.append(f'<rect x="{PAD + i * step:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" height="{h:.1f}" '
                         f'fill="{colour(outcome)}"><title>{escape(outcome)}: {column[outcome]}</title></rect>')
    parts.append(_axis_label(PAD, time.strftime("%H:%M", time.gmtime(first / 1000))))
    parts.append(_axis_label(WIDTH - 40, time.strftime("%H:%M", time.gmtime(now_ms / 1000))))
    return _svg("calls-per-minute", parts)


def latency_bars(latencies_ms: list[int]) -> str:
    """How many calls took each latency bucket from webhook to event."""
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for value in latencies_ms:
        counts[next((i for i, b in enumerate(LATENCY_BUCKETS_MS) if value <= b), len(LATENCY_BUCKETS_MS))] += 1
    top = max([*counts, 1])
    step = (WIDTH - PAD) / len(counts)
    labels = [f"≤{_ms(b)}" for b in LATENCY_BUCKETS_MS] + [f">{_ms(LATENCY_BUCKETS_MS[-1])}"]
    parts = [_frame("Webhook to event latency", top)]
    for i, count in enumerate(counts):
        h = (HEIGHT - 2 * PAD) * count / top
        x = PAD + i * step
        parts.append(f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{step - 4:.1f}" height="{h:.1f}" '
                     f'fill="#1565c0"><title>{escape(labels[i])}: {count}</title></rect>')
        parts.append(_axis_label(x, labels[i]))
    return _svg("latency", parts)


def _ms(value: int) -> str:
    return f"{value // 1000}s" if value >= 1000 else f"{value}ms"


def _frame(title: str, top: int) -> str:
    return (f'<text x="{PAD}" y="14" font-size="12" font-weight="bold">{escape(title)}</text>'
            f'<text x="2" y="{PAD + 4}" font-size="10">{top}</text>'
            f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH}" y2="{HEIGHT - PAD}" stroke="#999"/>')


def _axis_label(x: float, text: str) -> str:
    return f'<text x="{x:.1f}" y="{HEIGHT - 10}" font-size="10">{escape(text)}</text>'


def _svg(name: str, parts: list[str]) -> str:
    return (f'<svg class="chart" id="{name}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="{WIDTH}" height="{HEIGHT}" role="img">' + "".join(parts) + "</svg>")
