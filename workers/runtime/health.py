"""Each worker process answers on a small port: `/healthz` for a liveness probe, `/metrics` for Prometheus.

The server runs inside the worker's own event loop, so an answer proves the loop is turning (a job that
blocks it makes the probe time out, which is what a liveness probe is for). It does not ask Redis: a
Redis outage should not get healthy workers restarted.

The port is bound when the worker is made (`listen`, from workers/runtime/settings.py), before it touches Redis: a port
already taken (9100 is also node_exporter's default) stops the worker with one line naming it (exit 1), where a
worker running on without its probe would be restarted by the orchestrator, or never checked at all.
WORKER_HEALTH_PORT=0 serves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from contract import logs

log = logs.get("workers.runtime.health")

Page = Callable[[], tuple[int, str, bytes]]


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pages: dict[str, Page]) -> None:
    try:
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        path = request.split(b" ", 2)[1].decode(errors="replace").split("?")[0]
        status, content_type, body = pages.get(path, lambda: (404, "text/plain", b"not found\n"))()
        head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: {content_type}\r\n"
        writer.write(f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, IndexError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def listen(port: int, host: str = "0.0.0.0") -> socket.socket | None:
    """The health port, bound and listening (0: None); OSError naming WORKER_HEALTH_PORT when it cannot be."""
    if port == 0:
        return None
    try:
        return socket.create_server((host, port))
    except OSError as e:
        raise OSError(f"cannot listen on WORKER_HEALTH_PORT {port} ({e.strerror or e}): set a free port for "
                      "/healthz and /metrics, or 0 turns it off") from e


async def start(listening: socket.socket | None, pages: dict[str, Page]) -> asyncio.Server | None:
    """Serves `pages` on the socket `listen` bound (None: nothing)."""
    if listening is None:
        return None
    server = await asyncio.start_server(lambda r, w: _handle(r, w, pages), sock=listening)
    log.info("worker.health_listening", port=listening.getsockname()[1])
    return server
