"""The destinations page: each destination's health, and the operator's pause, resume and replay-since.

    GET  /destinations                      one row per destination: state, failures, failing since, last
                                            success, last error, backlog, parked, dead letters, retry schedule
                                            and, below, each one's tries over the last `hours` (6):
                                            delivered and failed per bucket (console/series.py)
    POST /destinations/{name}/pause         workers/deliver/admin.pause (control.pause)
    POST /destinations/{name}/resume        workers/deliver/admin.resume (control.resume: parked ones queued)
    POST /destinations/{name}/replay        admin.replay: the event log since (until, types) queued again
    POST /destinations/{name}/redeliver     admin.redeliver_failed: only what the ledger says it has not got

The figures are `wavix-events destinations`'s (workers/deliver/health.read); the actions are the CLI's own
functions, so a name not in the routing file is refused the same way. Actions answer 403 unless
CONSOLE_ALLOW_ACTIONS=1 and, like every POST, need the CSRF token. A destination appears by name only: its
URL and secret never reach the page, and its last error is shown with any URL or secret in it masked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from arq.connections import ArqRedis
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template
from redis.asyncio import Redis

from console import series
from console.data import dead_letters, dead_per_destination, now_ms
from console.web import Form, page, refused
from contract import logs
from contract.settings import Settings
from workers.deliver import admin, health
from workers.deliver.route import Destination
from workers.runtime.context import destinations_for

log = logs.get("console.destinations")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


@dataclass(frozen=True)
class Row:
    """One destination as the page shows it: figures and words only, nothing that locates or unlocks it."""

    health: health.Health
    configured: bool
    schedule: str = ""
    max_per_second: float = 0.0
    error: str = ""
    listed_dead: int = 0  # its letters in the dead-letter stream now (health.dead_letters counts every one)

    @property
    def state(self) -> str:
        return "paused" if self.health.paused else "failing" if self.health.streak else "ok"


class ActionForm(msgspec.Struct):
    """The replay form's fields (pause and resume send only the CSRF token)."""

    since: str = ""
    until: str = ""
    type: str = ""


def masked(error: str, destinations: Sequence[Destination]) -> str:
    """`error` without any destination's URL or secret, nor anything that looks like a URL."""
    for d in destinations:
        for secret in (d.secret, d.url, d.where):
            if secret:
                error = error.replace(secret, "…")
    return _URL.sub("[url]", error)


def configured(settings: Settings) -> tuple[Destination, ...] | None:
    """The routing file's destinations; None when it cannot be read (the worker reports that)."""
    try:
        return destinations_for(settings)
    except Exception:  # a broken routing file: the page still shows the names the console started with
        return None


async def rows(redis: Redis, settings: Settings, fallback: Sequence[str]) -> list[Row]:
    """Every configured destination's health, then any other destination that has dead letters listed."""
    found = configured(settings)
    known = {d.name: d for d in found} if found is not None else {}
    counts = dead_per_destination(await dead_letters(redis, settings.dead_letter_stream))
    names = list(known) if found is not None else list(fallback)
    names += sorted(set(counts) - set(names))
    out = []
    for h in await health.read(redis, settings.key_prefix, names):
        d = known.get(h.name)
        out.append(Row(health=h, configured=d is not None or h.name in fallback,
                       schedule=d.retry.describe() if d else "", max_per_second=d.max_per_second if d else 0.0,
                       error=masked(h.last_error, tuple(known.values())), listed_dead=counts.get(h.name, 0)))
    return out


def when(ms: int, now: int | None = None) -> str:
    """UTC time and age (`2026-06-30 09:00:00Z, 5m ago`); "-" for never."""
    if not ms:
        return "-"
    age = max((now if now is not None else now_ms()) - ms, 0) // 1000
    ago = f"{age}s" if age < 120 else f"{age // 60}m" if age < 7200 else f"{age // 3600}h"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ms / 1000))}Z, {ago} ago"


@get("/destinations")
async def destinations_page(request: Request[Any, Any, Any], done: FromQuery[str] = "",
                            hours: FromQuery[str] = "6") -> Template:
    settings: Settings = request.app.state.settings
    form = Form()
    window = form.whole("hours", hours, 6, 1, series.MAX_HOURS)
    found = await rows(request.app.state.redis, settings, request.app.state.destination_names)
    charts = await series.read(request.app.state.redis, settings.key_prefix, [r.health.name for r in found], window)
    return page("destinations.html", request, form, rows=found, done=done, when=when, hours=window,
                charts=[series.chart(c) for c in charts])


async def act(settings: Settings, redis: ArqRedis, name: str, action: str, form: ActionForm) -> str:
    """Runs one action with the CLI's own function; raises AdminError when it cannot be done as asked."""
    if action == "pause":
        return await admin.pause(settings, redis, name)
    if action == "resume":
        return await admin.resume(settings, redis, name)
    if not form.since.strip():
        raise admin.AdminError(f"{action} needs a since time (ISO 8601, e.g. 2026-06-30T09:00Z, or an age: 2h)")
    types = tuple(t for t in re.split(r"[,\s]+", form.type) if t)
    since_ms, until_ms = admin.parse_time(form.since), admin.parse_time(form.until) if form.until.strip() else None
    if action == "redeliver":
        return await admin.redeliver_failed(settings, redis, name, since_ms=since_ms, until_ms=until_ms, types=types)
    return await admin.replay(settings, redis, name, since_ms=since_ms, until_ms=until_ms, types=types)


@post("/destinations/{name:str}/{action:str}", status_code=303)
async def destination_action(
    request: Request[Any, Any, Any], name: FromPath[str], action: FromPath[str],
    data: Annotated[ActionForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    if (refusal := refused(request)) is not None:
        return refusal
    if action not in ("pause", "resume", "replay", "redeliver"):
        return Response("unknown action", status_code=404)
    try:
        done = await act(request.app.state.settings, request.app.state.arq, name, action, data)
    except admin.AdminError as e:
        done = f"not done: {e}"
    log.info("console.destination_action", action=action, sink=name, result=done)
    return Redirect(f"/destinations?done={quote(done)}", status_code=303)
