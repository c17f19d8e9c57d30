"""What every console page and action shares: the options, rendering a page, its form's errors, the actions' switch.

Kept apart from console/app.py so the pages of each area (console/destinations.py) import it without
importing the app that mounts them. A page reads its query parameters through a `Form`: one that is not what
its field expects is noted (shown beside the form, the answer a 400) and the field's default is used, so a
mistyped URL still gives the page, never Litestar's JSON error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response
from litestar.params import QueryParameter
from litestar.response import Template

from console.session import LIFE_S
from workers.deliver import admin

ACTIONS_OFF = "actions are off (CONSOLE_ALLOW_ACTIONS=1 turns them on)"
BANNER = "console_banner"  # request.state: the banner's alarms, read before the page (console/app.py)
PageNumber = Annotated[str, QueryParameter(name="page")]  # a list's page (console/paging.py), read by `Form.whole`


REFRESH_COOKIE = "wavix_console_refresh"  # "off": this browser turned auto-refresh off (POST /refresh)
REFRESHING = frozenset({"overview.html", "calls.html", "destinations.html", "dead_letters.html"})


@dataclass(frozen=True)
class Thresholds:
    """When the banner speaks (console/banner.py); the console's command-line options (wavix_events/cli.py)."""

    queue_age_s: int = 120  # a job due this long and not finished: the queue is stuck
    quiet_s: int = 600  # no event built this long while calls wait in the queue


@dataclass(frozen=True)
class ConsoleOptions:
    token: str
    allow_actions: bool = False
    session_seconds: int = LIFE_S  # a login's fixed life (console/session.py)
    refresh_seconds: int = 30  # the lists and the overview reload themselves this often (0: never)
    thresholds: Thresholds = Thresholds()  # when the banner speaks (console/banner.py)


class Form:
    """A page's query parameters, read leniently: a bad value is an error on the page and its default is used."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def whole(self, name: str, text: str, default: int, low: int, high: int) -> int:
        """`text` as a whole number clamped to [low, high]; `default` (and an error) when it is not one."""
        try:
            return max(low, min(int(text.strip()), high))
        except ValueError:
            self.errors.append(f"{name}: {text!r} is not a whole number; showing {default}")
            return default

    def time(self, name: str, text: str) -> int | None:
        """Unix ms from ISO 8601 or an age (`2h`), as the CLI reads them (admin.parse_time); None when empty
        or not a time (then an error)."""
        if not text.strip():
            return None
        try:
            return admin.parse_time(text)
        except admin.AdminError as e:
            self.errors.append(f"{name}: {e}")
            return None

    def choice(self, name: str, text: str, allowed: Sequence[str]) -> str:
        """`text` if it is one of `allowed` (or empty: any), else "" and an error."""
        if not text or text in allowed:
            return text
        self.errors.append(f"{name}: {text!r} is not one of {', '.join(allowed)}; showing any")
        return ""


def page(name: str, request: Request[Any, Any, Any], form: Form | None = None, **context: Any) -> Template:
    """The page `name`; a 400 showing the form's errors when a query parameter could not be used."""
    options: ConsoleOptions = request.app.state.options
    errors = form.errors if form is not None else []
    refresh_off = request.cookies.get(REFRESH_COOKIE) == "off"
    refresh = options.refresh_seconds if name in REFRESHING and not refresh_off and not errors else 0
    return Template(template_name=name, status_code=400 if errors else 200,
                    context={"actions": options.allow_actions, "path": request.url.path, "form_errors": errors,
                             "banner": request.state.get(BANNER, []), "refresh": refresh,
                             "refresh_off": refresh_off, "refresh_seconds": options.refresh_seconds,
                             "query": request.url.query, **context})


def refused(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """403 for any action while CONSOLE_ALLOW_ACTIONS is off; None when actions are on."""
    options: ConsoleOptions = request.app.state.options
    return None if options.allow_actions else Response(ACTIONS_OFF, status_code=403)
