"""How the chaos runs place and stop the processes they start.

`Place` is where a process runs: the address it binds and answers on, and the command prefix that puts it
there (nothing on loopback; `ip netns exec NAME` for a host of the several-host run, chaos/ha/hosts.py,
which execs the command, so the child's pid is the process itself and a signal reaches it). `terminate`
stops a process: SIGTERM (graceful), SIGKILL if it has not ended in time.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """Where a process runs: `address` it binds and is reached on, `wrap` the command prefix that puts it there."""

    address: str = "127.0.0.1"
    wrap: tuple[str, ...] = ()

    @property
    def loopback(self) -> bool:
        return self.address == LOOPBACK.address


LOOPBACK = Place()


def terminate(process: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """Stops `process` (a no-op when it already ended) and returns its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
