"""CPU time and memory of a benchmarked process, from /proc: what a call costs, not how long it took.

Wall-clock throughput on this shared 2-core VM swings by tens of percent from one minute to the next; the CPU
a process spends on a fixed amount of work moves far less (issue #29), so every per-call cost in
bench/results.json is process CPU time (user + system) over a counted number of calls. The children are
included because a server may fork its workers (Granian does); uvicorn with one worker is one process.
Clock ticks are 10 ms, so a figure needs a few thousand calls behind it to be good to a percent.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 0, ppid 1, utime 11


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def cpu_ms(pid: int) -> float:
    """User + system CPU of `pid` and its live descendants so far, in ms (0 for a process that is gone)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) * _TICK_MS
    return own + sum(cpu_ms(child) for child in _children(pid))


def rss_kib(pid: int) -> int:
    """The process's resident memory now, KiB (0 for a process that is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith("VmRSS:")), 0)
