"""Runs the receiver on an ASGI server.

Granian is the default: measured against uvicorn (httptools + uvloop) on this machine with the same app
and load, it served more webhooks per second (docs/benchmarks.md). uvicorn stays selectable for comparison.
Access logs are off: the request path holds the secret token. The receiver logs its own structured lines.
"""

from __future__ import annotations


def run(
    *, host: str, port: int, workers: int = 1, server: str = "granian", target: str = "service.asgi:app"
) -> int:
    """Serves `target` (an app factory that reads its settings from the environment) until stopped."""
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            target, factory=True, host=host, port=port, workers=workers,
            access_log=False, log_config=None, loop="uvloop", http="httptools", lifespan="on",
        )
        return 0
    from granian.constants import Interfaces, Loops
    from granian.server import Server

    Server(
        target, address=host, port=port, interface=Interfaces.ASGI, workers=workers,
        factory=True, loop=Loops.uvloop, log_access=False, log_enabled=False,
    ).serve()
    return 0
