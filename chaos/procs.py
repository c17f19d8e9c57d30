"""How the chaos run stops a process it started: SIGTERM (graceful), SIGKILL if it has not ended in time."""

from __future__ import annotations

import signal
import subprocess


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
