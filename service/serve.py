"""Runs the receiver on an ASGI server.

uvicorn (httptools, uvloop) is the default because of HTTP framing (issue #13): its parser (llhttp)
answers 400 and closes the connection, before the app is called, to a request framed by both
`Content-Length` and `Transfer-Encoding` (the request-smuggling shape of RFC 9112 §6.1) and to broken
chunked framing (a size not in hex, negative or overflowing, no CRLF after a chunk's data, bytes in a
chunk extension); nothing of such a request is queued (tests/test_http_framing.py). Granian 2.8 (hyper)
drops `Content-Length` when the request is chunked, frames by chunks and answers, so neither it nor any
ASGI middleware can refuse CL + TE. The price, measured by `make bench` with both servers in one run
(`ingest.server_cost_pct`, docs/benchmarks.md): none in throughput on this machine. Over seven runs on
2026-12-02 uvicorn served a median 20% more webhooks per second than Granian (from 24% more to 8% fewer,
that one with the machine busy); earlier measurements, with the receiver's previous Redis client, had
Granian ahead. Granian stays selectable (`--server granian`, hidden: for the benchmarks) so that the
comparison keeps being made.

uvicorn's own options that matter here:
- access logs off: the request path holds the secret token. The server's own lines (started, listening,
  a malformed request refused, a worker that died) go through our log format on stderr (the root logger
  contract.logs configures); the receiver logs its own structured lines.
- `proxy_headers` off: uvicorn would otherwise take the client address from `X-Forwarded-For` on any
  connection from 127.0.0.1, bypassing the app's own rule (WEBHOOK_TRUSTED_PROXIES, service/auth.py).
- no `server` header: nothing tells a scanner which server answers.
- no WebSocket protocol: neither app has a WebSocket route, and an `Upgrade` request is then handled the
  same whether or not a websockets package is installed (the image has none; the test extra has one).
- a graceful SIGTERM ends with status 0 (uvicorn re-raises the signal once it has shut down, which would
  end the process as killed).
- its httptools protocol with the request head bounded in size (431) and time (408): service/httphead.py.

Before the server starts, the address is bound once here: a port in use or an address not on this host
is an `OSError` the CLI turns into one line (exit 1), not a server's traceback.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from types import FrameType
from typing import Any

SERVERS = ("uvicorn", "granian")
HTTP_PROTOCOL = "service.httphead:BoundedHeadProtocol"  # httptools, with the request head bounded

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


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(
    *, host: str, port: int, workers: int = 1, server: str = "uvicorn", target: str = "service.asgi:app"
) -> int:
    """Serves `target` (an app factory that reads its settings from the environment) until stopped."""
    check_listen(host, port)
    if server == "uvicorn":
        import uvicorn

        # uvicorn restores this handler once it has shut down on SIGTERM, then raises SIGTERM again.
        signal.signal(signal.SIGTERM, _stopped)
        uvicorn.run(
            target, factory=True, host=host, port=port, workers=workers, loop="uvloop", http=HTTP_PROTOCOL,
            lifespan="on", ws="none", access_log=False, log_config=None, proxy_headers=False, server_header=False,
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
