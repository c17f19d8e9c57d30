"""`make chaos-ha` (`python -m chaos.ha`): the service on several hosts of one machine, faults on the hosts.

    python -m chaos.ha [--calls 4000] [--rate 40] [--workdir DIR]

Needs root (it builds network namespaces with `ip netns`). Prints the table of docs/chaos.md, writes
chaos/results-ha.json, and exits 1 if the bar was not met. Every host, link and process of the run is removed
on the way out, on Ctrl-C and SIGTERM too; a crashed run's leftovers are removed when the next one starts.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from chaos.ha import hosts, report
from chaos.ha.run import Plan, execute
from chaos.report import conclude

RESULTS = Path(__file__).resolve().parent.parent / "results-ha.json"


async def _cancellable(plan: Plan, workdir: Path) -> dict[str, Any]:
    """The run, cancelled by SIGTERM as by Ctrl-C, so that its cleanup runs either way."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await execute(plan, workdir)


def _run(plan: Plan, workdir: Path | None) -> dict[str, Any]:
    with hosts.exclusive(), tempfile.TemporaryDirectory(prefix="wavix-chaos-ha-", ignore_cleanup_errors=True) as tmp:
        try:
            return asyncio.run(_cancellable(plan, workdir or Path(tmp)))
        finally:  # whatever happened: no host, link or process of the run is left (a second Ctrl-C waits)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            hosts.remove_leftovers()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None, help="calls a second")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and data here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("chaos-ha: needs root and iproute2's `ip`: it builds network namespaces", file=sys.stderr)
        return 2
    plan = Plan()
    plan = dataclasses.replace(plan, calls=args.calls or plan.calls, rate=args.rate or plan.rate)
    try:
        figures = _run(plan, args.workdir)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("chaos-ha: interrupted; every host, link and process of the run was removed", file=sys.stderr)
        return 130
    return conclude(figures, RESULTS, name="chaos-ha", judge=report.verdict, draw=report.table)


if __name__ == "__main__":
    sys.exit(main())
