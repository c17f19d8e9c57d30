"""Routing reload: on SIGHUP the worker reads its routing file again and, only if the new file is valid, uses it.

    kill -HUP <worker pid>          (compose: docker compose kill -s HUP worker)

The new file is checked exactly as at start (workers/deliver/route.py); a file that fails keeps the old routing
and logs `routing.reload_refused` with the file's own error (`sinks.yaml:12: destination "crm": ...`), so a typo
saved over a working file never stops deliveries. A valid file swaps destinations and sinks at once for the
tries that start next: a destination whose URL and secret did not change keeps its sink (and its connections);
a removed or changed one's old sink is closed once the attempts already holding it have had their time
(`close_after_s`). Deliveries waiting for a destination that is gone are dead-lettered by their next try
("no longer configured"), and can be replayed if it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from contract import logs
from workers.deliver.route import Destination, RouteError
from workers.deliver.sinks.base import Sink, SinkError, SinkOptions, build_sink
from workers.privacy import forming

log = logs.get("workers.deliver.reload")

_tasks: set[asyncio.Task[None]] = set()


class Routed(Protocol):
    """What a reload changes: the worker's resources (workers/runtime/context.py)."""

    destinations: tuple[Destination, ...]
    sinks: dict[str, Sink]


def reload(target: Routed, load: Callable[[], tuple[Destination, ...]], options: SinkOptions,
           *, close_after_s: float = 45.0) -> bool:
    """Loads the routing file again; True once the new routing is in use, False (old routing kept) if it is bad."""
    try:
        fresh = load()
        old = {d.name: d for d in target.destinations}
        sinks = {d.name: _sink_for(d, old.get(d.name), target.sinks, options) for d in fresh}
        sinks = forming.formed(sinks, target, getattr(target, "redact_key", None))  # a new sink's `redact:` too
    except (RouteError, SinkError, OSError) as e:
        log.error("routing.reload_refused", reason=str(e), kept=",".join(old_names(target)))
        return False
    retired = [s for name, s in target.sinks.items() if sinks.get(name) is not s]
    target.destinations, target.sinks = fresh, sinks
    if retired:
        _spawn(_close_later(retired, close_after_s))
    log.warning("routing.reloaded", destinations=",".join(d.name for d in fresh), retired=len(retired))
    return True


def old_names(target: Routed) -> list[str]:
    return [d.name for d in target.destinations]


def _sink_for(new: Destination, old: Destination | None, sinks: dict[str, Sink], options: SinkOptions) -> Sink:
    if old is not None and (old.url, old.secret) == (new.url, new.secret) and new.name in sinks:
        return sinks[new.name]
    return build_sink(new.url, name=new.name, secret=new.secret, options=options)


async def _close_later(sinks: list[Sink], after_s: float) -> None:
    await asyncio.sleep(after_s)
    for sink in sinks:
        with contextlib.suppress(Exception):
            await sink.close()


def _spawn(coroutine: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(coroutine)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def on_sighup(target: Routed, load: Callable[[], tuple[Destination, ...]], options: SinkOptions,
              on_outcome: Callable[[bool], None] = lambda ok: None) -> Callable[[], None]:
    """Reloads on every SIGHUP; returns the function that stops listening (a no-op where signals are not ours)."""
    loop = asyncio.get_running_loop()

    def handle() -> None:
        on_outcome(reload(target, load, options))

    try:
        loop.add_signal_handler(signal.SIGHUP, handle)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signals here
        return lambda: None

    def off() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return off
