"""How a stand-in for a service we cannot reach (Slack, Teams, PagerDuty) runs in the foreground: one
banner that tells what to set, uvicorn quiet, and the same three flags for each (`--host`, `--port`,
`--quiet`). The stand-ins themselves (sandbox/slack.py, teams.py, pagerduty.py) answer as the real service."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def run_forever(app: Any, host: str, port: int, *banner: str) -> None:
    """Prints `banner` (the settings that point the workers here) and serves `app` until interrupted."""
    import uvicorn

    for line in banner:
        print(line, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off")


def main(argv: list[str] | None, description: str, port: int, received: str,
         run: Callable[..., None]) -> None:
    """The stand-in's command line: `run(host, port, echo=...)` with `port` as the default."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--quiet", action="store_true", help=f"do not print {received}")
    args = parser.parse_args(argv)
    run(args.host, args.port, echo=not args.quiet)
