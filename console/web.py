"""What every console page and action shares: the options, rendering a page, the actions' switch.

Kept apart from console/app.py so the pages of each area (console/destinations.py) import it without
importing the app that mounts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.response import Template

ACTIONS_OFF = "actions are off (CONSOLE_ALLOW_ACTIONS=1 turns them on)"


@dataclass(frozen=True)
class ConsoleOptions:
    token: str
    allow_actions: bool = False


def page(name: str, request: Request[Any, Any, Any], **context: Any) -> Template:
    options: ConsoleOptions = request.app.state.options
    return Template(template_name=name, context={"actions": options.allow_actions, "path": request.url.path,
                                                 **context})


def refused(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """403 for any action while CONSOLE_ALLOW_ACTIONS is off; None when actions are on."""
    options: ConsoleOptions = request.app.state.options
    return None if options.allow_actions else Response(ACTIONS_OFF, status_code=403)
