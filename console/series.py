"""Each destination's tries over time: successes and failures per bucket, as a server-drawn SVG (issue #23).

The counts are workers/deliver/attempts.py's series: one hash per destination and hour,
`{minute_ms}:ok|fail` -> tries, written with each try's record, kept 48 h. The destinations page reads the last
`hours` of every destination in one pipelined round trip (one HGETALL per destination and hour) and draws
stacked bars, successes green under failures red, `BARS` buckets wide whatever the window. Only tries that
reached the destination count (not parked, throttled or delivered before), as on the health row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from redis.asyncio import Redis

from workers.deliver.attempts import SERIES_S, series_key

BARS = 72
WIDTH, HEIGHT, PAD = 720, 120, 28
HOUR_MS = 3_600_000
MAX_HOURS = SERIES_S // 3600


@dataclass
class Series:
    """One destination's tries in `BARS` buckets from `start_ms`, each `bucket_ms` long."""

    name: str
    start_ms: int
    bucket_ms: int
    ok: list[int] = field(default_factory=lambda: [0] * BARS)
    fail: list[int] = field(default_factory=lambda: [0] * BARS)

    def add(self, minute_ms: int, outcome: str, count: int) -> None:
        i = (minute_ms - self.start_ms) // self.bucket_ms
        if 0 <= i < BARS:
            (self.ok if outcome == "ok" else self.fail)[i] += count


async def read(redis: Redis, prefix: str, names: Sequence[str], hours: int, now_ms: int | None = None) -> list[Series]:
    """Every destination's series over the last `hours` (1 to 48)."""
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    bucket_ms = hours * HOUR_MS // BARS
    start = (now // bucket_ms + 1) * bucket_ms - BARS * bucket_ms
    first_hour = start // HOUR_MS * HOUR_MS
    hour_starts = range(first_hour, now + 1, HOUR_MS)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            for hour in hour_starts:
                pipe.hgetall(series_key(prefix, name, hour))
        answers = iter(await pipe.execute())
    out = []
    for name in names:
        series = Series(name, start, bucket_ms)
        for _ in hour_starts:
            for key, count in next(answers).items():
                minute, _, outcome = key.decode().partition(":")
                series.add(int(minute), outcome, int(count))
        out.append(series)
    return out


def chart(s: Series) -> str:
    """Stacked bars: successes (green) under failures (red), one per bucket, oldest on the left."""
    top = max([o + f for o, f in zip(s.ok, s.fail, strict=True)] + [1])
    step, span = (WIDTH - PAD) / BARS, HEIGHT - 2 * PAD
    parts = [f'<text x="{PAD}" y="14" font-size="12" font-weight="bold">{escape(s.name)}: tries per '
             f'{s.bucket_ms // 60_000} min, {sum(s.ok)} delivered, {sum(s.fail)} failed</text>',
             f'<text x="2" y="{PAD + 4}" font-size="10">{top}</text>',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH}" y2="{HEIGHT - PAD}" stroke="#999"/>']
    for i, (ok, fail) in enumerate(zip(s.ok, s.fail, strict=True)):
        x, y = PAD + i * step, float(HEIGHT - PAD)
        at = time.strftime("%H:%M", time.gmtime((s.start_ms + i * s.bucket_ms) / 1000))
        for count, kind, colour in ((ok, "ok", "#2e7d32"), (fail, "fail", "#c62828")):
            if count:
                h = span * count / top
                y -= h
                parts.append(f'<rect class="{kind}" data-count="{count}" x="{x:.1f}" y="{y:.1f}" '
                             f'width="{max(step - 1, 1):.1f}" height="{h:.1f}" fill="{colour}">'
                             f'<title>{at}Z: {count} {"delivered" if kind == "ok" else "failed"}</title></rect>')
    for x, ms in ((PAD, s.start_ms), (WIDTH - 40, s.start_ms + BARS * s.bucket_ms)):
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 10}" font-size="10">'
                     f'{time.strftime("%H:%M", time.gmtime(ms / 1000))}Z</text>')
    return (f'<svg class="chart series" id="series-{escape(s.name)}" data-ok="{sum(s.ok)}" data-fail="{sum(s.fail)}" '
            f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img">' + "".join(parts) + "</svg>")
