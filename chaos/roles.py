"""The roles of a chaos run as real processes: receiver, workers and the Wavix sandbox, each `wavix-events`.

Each child's output goes to its own log file in the run's directory. A worker can be killed with
SIGKILL and started again on the same health port, as a process supervisor (systemd, Kubernetes) would
restart it; a worker that exits when nobody killed it is counted as an unexpected exit, and restarted too.
The several-host run (chaos/ha/) starts its roles on hosts of their own (`wrap`: the `ip netns exec` prefix),
runs its Wavix host and NATS the same way (`program`), and can crash a role without restarting it, as when
its host goes down (`kill(restart=False)`). Only the processes started here are ever signalled.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chaos.procs import terminate


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.TransportError:
        return False


@dataclass
class Role:
    """One `wavix-events ARGS` child (or `program ARGS`) with `env`, logging to `log`, started under the command
    prefix `wrap`; `ready_url` answers once it is up."""

    name: str
    args: list[str]
    env: Mapping[str, str]
    log: Path
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    unexpected_exits: list[int] = field(default_factory=list)
    program: tuple[str, ...] = ()
    wrap: tuple[str, ...] = ()

    @property
    def argv(self) -> list[str]:
        return [*self.wrap, *(self.program or (sys.executable, "-m", "wavix_events.cli")), *self.args]

    def start(self, timeout_s: float = 30.0) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=dict(self.env),
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while self.ready_url and not answers(self.ready_url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log.read_text(errors='replace')[-1500:]}")
            time.sleep(0.1)

    def kill(self, *, restart: bool = True) -> None:
        """kill -9, then start again at once: what a supervisor does with a crashed worker (`restart=False`: a
        role whose host went down stays down until `start()`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            self.kills += 1
        self.process = None
        if restart:
            self.start()

    def check(self) -> None:
        """Counts an exit nobody asked for, and restarts the process."""
        if self.process is not None and (status := self.process.poll()) is not None:
            self.unexpected_exits.append(status)
            self.start()

    def stop(self, timeout_s: float = 45.0) -> int | None:
        """SIGTERM (graceful), SIGKILL after `timeout_s`; returns the exit status."""
        return None if self.process is None else terminate(self.process, timeout_s)
