"""The banner: what is wrong right now, at the top of every page, with links to the views that show it (issue #23).

    a destination failing        its last try failed (health streak > 0, not paused): since when, how many tries
                                 in a row, its last error (masked) -> its dead letters, its row, redeliver form
    the queue stuck              a job due longer than `queue_age_s` (CONSOLE --queue-alert, 2 min) and not
                                 finished: the workers are down, too few, or stuck -> the calls, the destinations
    events stopped               no event built for `quiet_s` (--quiet-alert, 10 min) while calls wait in the
                                 queue: webhooks arrive but nothing comes out -> the calls, the dead letters

Read before each page (console/app.py's before-request hook), in two pipelined round trips: the destinations'
health (workers/deliver/health.read) and the queue's oldest due job, its due count and the event log's newest
entry. Only when events have stopped is the queue scanned for call jobs (ZSCAN on `{prefix}call:*`). An idle
system raises nothing: no job waits, so nothing is stuck and nothing is missing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from redis.asyncio import Redis

from console.destinations import masked
from console.web import Thresholds
from contract.intake import call_job_id
from contract.record import calls_key
from contract.settings import Settings
from workers.deliver import eventlog, health
from workers.deliver.route import Destination


@dataclass(frozen=True)
class Alarm:
    """One line of the banner: what (destination, queue, quiet), a sentence, and (label, href) links."""

    what: str
    text: str
    links: tuple[tuple[str, str], ...] = ()


def age(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h"


def failing(rows: Sequence[health.Health], known: Sequence[Destination], now_ms: int) -> list[Alarm]:
    out = []
    for h in rows:
        if not h.streak or h.paused:
            continue
        name = quote(h.name)
        since = f" for {age((now_ms - h.failing_since_ms) / 1000)}" if h.failing_since_ms else ""
        error = f": {masked(h.last_error, known)}" if h.last_error else ""
        out.append(Alarm("destination", f"Destination {h.name} is failing{since} ({h.streak} tries in a row){error}",
                         (("its dead letters", f"/dead-letters?destination={name}"),
                          ("its health and redelivery", f"/destinations#destination-{name}"))))
    return out


async def _queue(redis: Redis, settings: Settings, now_ms: int) -> tuple[float, int, int]:
    """The oldest due job's due time (ms, 0: none), how many are due, and the newest event's time (ms)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(settings.queue_name, "-inf", now_ms, start=0, num=1, withscores=True)
        pipe.zcount(settings.queue_name, "-inf", now_ms)
        pipe.xrevrange(eventlog.key(settings.key_prefix), count=1)
        pipe.zrevrange(calls_key(settings.key_prefix), 0, 0, withscores=True)
        oldest, due, newest_event, newest_call = await pipe.execute()
    event_ms = int(newest_event[0][0].split(b"-")[0]) if newest_event else 0
    indexed_ms = int(newest_call[0][1]) if newest_call else 0  # no event log (EVENT_LOG_RETENTION=0): the index
    return (oldest[0][1] if oldest else 0.0), int(due), max(event_ms, indexed_ms)


async def waiting_calls(redis: Redis, settings: Settings) -> int:
    """How many call jobs are in the queue (due or not): webhooks that arrived and wait for their event."""
    match = call_job_id(settings.key_prefix, "*")
    return sum([1 async for _ in redis.zscan_iter(settings.queue_name, match=match, count=1000)])


async def read(redis: Redis, settings: Settings, known: Sequence[Destination], names: Sequence[str],
               thresholds: Thresholds) -> list[Alarm]:
    """Everything wrong now, destinations first."""
    now_ms = time.time_ns() // 1_000_000
    alarms = failing(await health.read(redis, settings.key_prefix, names), known, now_ms)
    oldest_ms, due, newest_ms = await _queue(redis, settings, now_ms)
    if oldest_ms and now_ms - oldest_ms > thresholds.queue_age_s * 1000:
        alarms.append(Alarm("queue", f"{due} job(s) are due in the queue and the oldest has waited "
                            f"{age((now_ms - oldest_ms) / 1000)} (more than {age(thresholds.queue_age_s)}): are the "
                            "workers running, and enough of them?",
                            (("the calls", "/calls?minutes=60"), ("the destinations' backlogs", "/destinations"))))
    quiet_s = (now_ms - newest_ms) / 1000
    if quiet_s > thresholds.quiet_s and (waiting := await waiting_calls(redis, settings)):
        last = f"for {age(quiet_s)}" if newest_ms else "yet"
        since = quote(age_text(quiet_s)) if newest_ms else "1d"
        alarms.append(Alarm("quiet", f"No event built {last} while {waiting} call(s) wait in the queue: webhooks "
                            "arrive but nothing comes out.",
                            (("the calls", "/calls?minutes=60"),
                             ("the dead letters of calls", f"/dead-letters?type=process_call&since={since}"))))
    return alarms


def age_text(seconds: float) -> str:
    """An age the dead-letter filter reads back (`90m`): at least a minute."""
    return f"{max(int(seconds // 60), 1)}m"
