"""`make chaos` (`python -m chaos`): the service under faults, on loopback, in at most about five minutes.

    python -m chaos [--calls 4000] [--rate 40] [--short] [--workdir DIR]

Prints the table of docs/chaos.md, writes chaos/results.json, and exits 1 if the bar was not met.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

from chaos import report
from chaos.run import SHORT, Plan, execute

RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="200 calls, one worker kill, one Redis restart")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and Redis data here")
    args = parser.parse_args(argv)
    plan = SHORT if args.short else Plan()
    plan = dataclasses.replace(plan, calls=args.calls or plan.calls, rate=args.rate or plan.rate)
    with tempfile.TemporaryDirectory(prefix="wavix-chaos-") as tmp:
        figures = asyncio.run(execute(plan, args.workdir or Path(tmp)))
    return report.conclude(figures, RESULTS, name="chaos", judge=report.verdict, draw=report.table)


if __name__ == "__main__":
    sys.exit(main())
