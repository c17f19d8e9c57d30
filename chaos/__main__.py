"""`make chaos` (`python -m chaos`): the service under faults, on loopback, in at most about five minutes.

    python -m chaos [--calls 4000] [--rate 40] [--short] [--workdir DIR]

Prints the table of docs/chaos.md, writes chaos/results.json, and exits 1 if the bar was not met.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
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
    failures = report.verdict(figures)
    figures["passed"] = not failures
    RESULTS.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(report.table(figures))
    print(f"written to {RESULTS}")
    for failure in failures:
        print(f"chaos: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
