"""Running the real roles as processes for tests: free loopback ports, wait until they answer, stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(
    args: list[str], env: Mapping[str, str], ready_url: str, timeout: float = 20.0, stderr: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts `wavix-events ARGS` with `env` added, waits for `ready_url` to answer, stops it with SIGTERM.

    The process's log (stderr) goes to `stderr` when given, else to a temporary file, kept to explain a failed
    start. Never to a pipe nobody reads: a role logging a line per request (the receiver at INFO) filled the
    pipe's 64 KiB after ~320 webhooks and then hung on its next log line.
    """
    with stderr.open("w+b") if stderr is not None else tempfile.TemporaryFile() as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "wavix_events.cli", *args],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    sink.seek(0)
                    said = sink.read().decode(errors="replace")
                    raise RuntimeError(f"{args[0]} exited: {said}")
                try:
                    if httpx.get(ready_url, timeout=1.0).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{args[0]} did not answer at {ready_url}")
                time.sleep(0.1)
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
