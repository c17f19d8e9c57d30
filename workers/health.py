"""Each worker process answers on a small port: `/healthz` for a liveness probe, `/metrics` for Prometheus.

The server runs inside the worker's own event loop, so an answer proves the loop is turning (a job that
blocks it makes the probe time out, which is what a liveness probe is for). It does not ask Redis: a
Redis outage should not get healthy workers restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from contract import logs

log = logs.get("workers.health")

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


async def start(port: int, pages: dict[str, Page], host: str = "0.0.0.0") -> asyncio.Server | None:
    """Serves `pages` on `port` (0: no server). A port in use is logged, never fatal to the worker."""
    if port == 0:
        return None
    try:
        server = await asyncio.start_server(lambda r, w: _handle(r, w, pages), host, port)
    except OSError as e:
        log.error("worker.health_port_unavailable", port=port, error=str(e))
        return None
    log.info("worker.health_listening", port=port)
    return server
