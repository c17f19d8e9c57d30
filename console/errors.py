"""The one place the console turns failures into pages: a page for every answer, never raw JSON (issue #23).

    RedisError          503 `unavailable.html`: Redis did not answer; since when (this process's first failure
                        of the outage, `Outage`), Retry-After; a warning per failed page, one line when it is over
    ValidationException 400 `problem.html`: a form or path that cannot be read (a page's own query parameters
                        are read leniently by console/web.py's `Form` and shown beside its form instead)
    HTTPException       its status, `problem.html` (404, 405, the CSRF check's 403)
    anything else       500 `problem.html`, logged with its traceback: a bug

The receiver answers the same outage with a JSON 503 (service/errors.py); the console's reader is a person,
so the page says what is wrong, since when, and that nothing was changed by a page that only reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Template
from litestar.types import ExceptionHandlersMap
from redis.exceptions import RedisError

from contract import logs

log = logs.get("console")

FAILED = "console_redis_failed"  # request.state's mark: this request met the outage


@dataclass
class Outage:
    """When this process first found Redis unreachable, until a page reads it again (0: no outage)."""

    since_ms: int = 0

    def failed(self) -> int:
        if not self.since_ms:
            self.since_ms = time.time_ns() // 1_000_000
        return self.since_ms

    def recovered(self) -> int:
        """Ends the outage; returns how long it lasted in ms (0 if there was none)."""
        lasted = time.time_ns() // 1_000_000 - self.since_ms if self.since_ms else 0
        self.since_ms = 0
        return lasted


def utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


def redis_down(request: Request[Any, Any, Any], doing: str, error: Exception) -> Template:
    """The 503 page for an outage met while `doing`; notes the outage's start and logs the page that met it."""
    outage: Outage = request.app.state.outage
    since = outage.failed()
    request.state[FAILED] = True
    log.warning("console.redis_unavailable", page=request.url.path, method=request.method, doing=doing,
                error=type(error).__name__, detail=str(error)[:200], down_since=utc(since))
    age_s = max(time.time_ns() // 1_000_000 - since, 0) // 1000
    return Template(template_name="unavailable.html", status_code=503, headers={"Retry-After": "5"},
                    context={"actions": False, "path": request.url.path, "bare": True, "doing": doing,
                             "since": utc(since), "age_s": age_s, "error": type(error).__name__})


def after(request: Request[Any, Any, Any]) -> None:
    """After each answer: a page that read Redis without meeting the outage ends it (one log line)."""
    outage: Outage = request.app.state.outage
    if not outage.since_ms or request.state.get(FAILED):
        return
    try:
        reads_redis = not request.route_handler.opt.get("no_redis")
    except Exception:  # no route (a 404): it proved nothing about Redis
        return
    if reads_redis:
        log.info("console.redis_back", page=request.url.path, down_s=round(outage.recovered() / 1000, 1))


def _redis(request: Request[Any, Any, Any], exc: RedisError) -> Response[Any]:
    doing = "show this page" if request.method == "GET" else "finish this action (part of it may be done)"
    return redis_down(request, doing, exc)


def problem(request: Request[Any, Any, Any], status: int, title: str, detail: str) -> Template:
    return Template(template_name="problem.html", status_code=status,
                    context={"actions": False, "path": request.url.path, "bare": status >= 500, "title": title,
                             "detail": detail})


def _invalid(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    fields = [f"{e.get('key', '?')}: {e.get('message', '')}" for e in (exc.extra or []) if isinstance(e, dict)]
    return problem(request, 400, "That request cannot be read", "; ".join(fields) or str(exc.detail))


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    titles = {403: "Refused", 404: "No such page", 405: "Not allowed here"}
    return problem(request, exc.status_code, titles.get(exc.status_code, "Cannot do that"), str(exc.detail))


def _bug(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("console.failed", exc_info=True, page=request.url.path, error=type(exc).__name__)
    return problem(request, 500, "Something went wrong", "An unexpected error; it is in the console's log.")


handlers: ExceptionHandlersMap = {
    RedisError: _redis,
    ValidationException: _invalid,
    HTTPException: _http,
    Exception: _bug,
}
