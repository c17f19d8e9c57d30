"""In flight: first delivery attempts that outlive the job that started them (workers/deliver/delivery.py).

An inline attempt slower than DELIVERY_INLINE_TIMEOUT is never abandoned (it may still land): it goes on
in the background and is kept here until it ends, so the worker's shutdown can wait for it before the
sinks close. Its own module so that the worker's wiring (workers/runtime/context.py) can wait for these tasks
without importing the delivery code, which imports the wiring's types.
"""

from __future__ import annotations

import asyncio

_running: set[asyncio.Task[None]] = set()


def keep(task: asyncio.Task[None]) -> None:
    """Holds `task` until it ends (asyncio keeps only weak references to tasks)."""
    _running.add(task)
    task.add_done_callback(_running.discard)


async def settle(timeout_s: float) -> None:
    """Waits at most `timeout_s` for the attempts still running; for shutdown."""
    if _running:
        await asyncio.wait(set(_running), timeout=timeout_s)
