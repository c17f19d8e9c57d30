"""A private `redis-server` that can be stopped, killed and started again on the same port and data.

The chaos run and tests/test_worker_outage.py take Redis away from running workers. They never touch
the machine's shared Redis: each starts its own on a free loopback port, with the append-only file on
(`--appendonly yes`, fsync every second) in a directory of its own, so a graceful `SHUTDOWN` keeps
every write and a `kill -9` loses at most the last second, as a production Redis with AOF would.
The several-host run (chaos/ha/) places the same server on a host of its own (`place`: its address, and
the `ip netns exec` prefix that starts it there).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from chaos.procs import LOOPBACK, Place, terminate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int, timeout_s: float = 0.5, host: str = "127.0.0.1") -> bool:
    """Whether PING on HOST:PORT gets PONG (a Redis still loading its AOF answers -LOADING)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """One redis-server child process; `stop()`, `kill()` and `start()` keep its port and its data."""

    def __init__(self, directory: Path, port: int | None = None, extra: Sequence[str] = (),
                 place: Place = LOOPBACK) -> None:
        """`extra`: more redis-server options (a replica's `--replicaof HOST PORT`); `place`: where it runs."""
        self.extra, self.place = list(extra), place
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.binary, self.directory, self.port = binary, directory, port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{self.port}/0"

    @property
    def address(self) -> str:
        return self.place.address

    def start(self, timeout_s: float = 15.0) -> PrivateRedis:
        """Starts the server (loading its AOF, if any) and waits until PING answers."""
        # off a loopback address Redis without a password answers only -DENIED, unless protected mode is off
        # (the address is a private host's: chaos/ha/hosts.py)
        opened = [] if self.place.loopback else ["--protected-mode", "no"]
        self.process = subprocess.Popen(
            [*self.place.wrap, self.binary, "--port", str(self.port), "--bind", self.address, "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.directory), "--daemonize", "no",
             "--loglevel", "warning", "--logfile", str(self.directory / "redis.log"), *opened, *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while not answers(self.port, host=self.address):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-500:]
                self.kill()
                raise RuntimeError(f"redis-server did not start on {self.address}:{self.port}: {log}")
            time.sleep(0.05)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """A graceful stop (SIGTERM: Redis flushes the AOF, then exits), as `SHUTDOWN` would do."""
        if self.process is not None:
            terminate(self.process, timeout_s)
        self.process = None

    def kill(self) -> None:
        """`kill -9`: no flush; the AOF keeps what was fsynced (all but the last second at most)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.kill()
