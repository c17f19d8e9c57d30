"""What every console page and action shares: the options, rendering a page, the actions' switch, the 503 page.

Kept apart from console/app.py so the pages of each area (console/destinations.py) import it without
importing the app that mounts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.response import Template

from console.session import LIFE_S

ACTIONS_OFF = "actions are off (CONSOLE_ALLOW_ACTIONS=1 turns them on)"


@dataclass(frozen=True)
class ConsoleOptions:
    token: str
    allow_actions: bool = False
    session_seconds: int = LIFE_S  # a login's fixed life (console/session.py)


def page(name: str, request: Request[Any, Any, Any], **context: Any) -> Template:
    options: ConsoleOptions = request.app.state.options
    return Template(template_name=name, context={"actions": options.allow_actions, "path": request.url.path,
                                                 **context})


def refused(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """403 for any action while CONSOLE_ALLOW_ACTIONS is off; None when actions are on."""
    options: ConsoleOptions = request.app.state.options
    return None if options.allow_actions else Response(ACTIONS_OFF, status_code=403)


def unavailable(request: Request[Any, Any, Any], doing: str) -> Template:
    """503 with a page that says what could not be done: Redis, which holds the sessions, did not answer."""
    return Template(template_name="unavailable.html", status_code=503, headers={"Retry-After": "5"},
                    context={"actions": False, "path": request.url.path, "bare": True, "doing": doing})
