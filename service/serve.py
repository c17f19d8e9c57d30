"""Runs the receiver on an ASGI server.

Granian is the default: measured against uvicorn (httptools + uvloop) on this machine with the same app
and load, it served more webhooks per second (docs/benchmarks.md). uvicorn stays selectable for comparison.
Access logs are off: the request path holds the secret token. The server's own lines (started, listening,
a worker that died) go through our log format on stderr; the receiver logs its own structured lines.

Before the server starts, the address is bound once here: a port in use or an address not on this host
is an `OSError` the CLI turns into one line (exit 1), not a server's traceback.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

# Granian's loggers, handed to the root logger that contract.logs configures (its own config prints to stdout).
GRANIAN_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"_granian": {"level": "INFO", "propagate": True}, "granian.access": {"level": "WARNING"}},
}


def check_listen(host: str, port: int) -> None:
    """Raises OSError, naming `host:port`, when the server could not listen there."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        reason = e.strerror or str(e)
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {reason.lower()}") from None


def run(
    *, host: str, port: int, workers: int = 1, server: str = "granian", target: str = "service.asgi:app"
) -> int:
    """Serves `target` (an app factory that reads its settings from the environment) until stopped."""
    check_listen(host, port)
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            target, factory=True, host=host, port=port, workers=workers,
            access_log=False, log_config=None, loop="uvloop", http="httptools", lifespan="on",
        )
        return 0
    from granian.constants import Interfaces, Loops
    from granian.server import Server

    with contextlib.suppress(KeyboardInterrupt):
        Server(
            target, address=host, port=port, interface=Interfaces.ASGI, workers=workers, factory=True,
            loop=Loops.uvloop, log_access=False, log_enabled=True, log_dictconfig=GRANIAN_LOGGING,
        ).serve()
    return 0
