"""The console's side of privacy (issue #25): CONSOLE_REDACT masks every number on every page, and a call erased
by `wavix-events forget` is shown as erased.

CONSOLE_REDACT works where every page is made: it is the Jinja environment's `finalize`, which every `{{ value }}`
of every template passes through before it is escaped, so a number is masked whether it comes from a call's
summary, a webhook body in its timeline, an event's payload on the deliveries page or a dead letter; a new page
gets it without asking. The mask is contract/privacy.py's (`mask_numbers`: country code and last 2 digits). Ids
and UUIDs are never taken for numbers, so links keep working. Searching by a number still finds its calls: only
what is shown is masked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine
from markupsafe import Markup
from redis.asyncio import Redis

from contract.privacy import mask_numbers
from contract.settings import Settings
from workers.privacy import tombstone


def _masked(value: Any) -> Any:
    """A rendered value with its numbers masked; markup stays markup (a '*' is no HTML)."""
    if isinstance(value, Markup):
        return Markup(mask_numbers(str(value)))  # masking adds only "*" to markup already safe
    return mask_numbers(value) if isinstance(value, str) else value


def templates(settings: Settings) -> Callable[[JinjaTemplateEngine], None]:
    """The template engine's set-up: with CONSOLE_REDACT, every rendered value has its numbers masked."""
    def setup(engine: JinjaTemplateEngine) -> None:
        if settings.console_redact:
            engine.engine.finalize = _masked
    return setup


async def erased_at(redis: Redis, prefix: str, call_id: str) -> int | None:
    """When the call was erased (ms), or None."""
    return (await tombstone.erased(redis, prefix, [call_id])).get(call_id)
