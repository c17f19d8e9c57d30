"""Which Redis the demo uses: REDIS_URL when set, else the default address, else a private `redis-server`.

A new user may have no Redis running. Rather than fail, the demo starts its own memory-only server on a
free loopback port as a child process (no RDB, no AOF: nothing is written to disk) and stops it at the
end. Only when `redis-server` is not installed does it stop and say what to install.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

from contract import redisurl
from demo.processes import free_port, stop_process

DEFAULT_ADDRESS = "127.0.0.1:6379"
INSTALL_HINT = (
    "Redis is needed and none answers on {address}. Install it and run `make demo` again:\n"
    "  Debian/Ubuntu: sudo apt-get install redis-server\n"
    "  macOS:         brew install redis\n"
    "or point the demo at one: REDIS_URL=redis://HOST:PORT/0 make demo"
)


class RedisUnavailable(Exception):
    """No Redis to use and none can be started; the message says what to install."""


@dataclass
class RedisChoice:
    """The URL the roles get, and the private server behind it when the demo started one."""

    url: str
    origin: str  # "REDIS_URL", "default" or "private"
    process: subprocess.Popen[bytes] | None = None

    @property
    def label(self) -> str:
        """Where Redis is, for people: a password in REDIS_URL is never shown."""
        kind, _, rest = self.url.partition("://")
        host, slash, path = rest.partition("/")
        shown = f"{kind}://{host.rpartition('@')[2]}{slash}{path}"
        return f"a private redis-server on {shown}" if self.process else f"{shown} ({self.origin})"

    @property
    def port(self) -> int | None:
        return None if redisurl.sentinel_target(self.url) else urlsplit(self.url).port


def answers_ping(address: str, timeout_s: float = 0.5) -> bool:
    """Whether a Redis that needs no password answers PING at HOST:PORT."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except (OSError, ValueError):
        return False


async def choose(redis_url: str | None, probe: str = DEFAULT_ADDRESS) -> RedisChoice:
    """REDIS_URL as given; else the default address if it answers; else a private server (or RedisUnavailable)."""
    if redis_url:
        return RedisChoice(redis_url, "REDIS_URL")
    if answers_ping(probe):
        return RedisChoice(f"redis://{probe}/0", "default")
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(INSTALL_HINT.format(address=probe))
    return await start_private(binary)


async def start_private(binary: str, timeout_s: float = 10.0) -> RedisChoice:
    """Starts a memory-only `redis-server` on a free loopback port and waits until it answers."""
    port = free_port()
    process = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1",
         "--daemonize", "no", "--loglevel", "warning"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    choice = RedisChoice(f"redis://127.0.0.1:{port}/0", "private", process)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not answers_ping(f"127.0.0.1:{port}"):
        if process.poll() is not None or loop.time() > deadline:
            await stop_private(choice)
            raise RedisUnavailable(f"{binary} did not start on 127.0.0.1:{port} (exit status {process.poll()})")
        await asyncio.sleep(0.05)
    return choice


async def stop_private(choice: RedisChoice, timeout_s: float = 5.0) -> None:
    """Stops the private server, if any: SIGTERM, then SIGKILL after `timeout_s`."""
    if choice.process is not None:
        await stop_process(choice.process, timeout_s)
