"""`python -m demo [--calls 300] [--rate 100] [--no-live] [--postgres URL]`: the entry point of `make demo`.

Ctrl-C (SIGINT), SIGTERM or a closed terminal (SIGHUP) stop the run cleanly: the roles are stopped, the
run's keys deleted and a private Redis stopped before it exits (status 130). A second Ctrl-C while
stopping changes nothing: every step of the stop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from rich.console import Console

from contract import logs
from demo.run import Options, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls the sandbox places (default 300)")
    parser.add_argument("--rate", type=float, default=100.0, help="webhooks per second (default 100)")
    parser.add_argument("--no-live", dest="live", action="store_false",
                        help="a progress line every 5 s instead of the live panel (default when not a terminal)")
    parser.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                        help="after the last webhook, how long calls may take to settle (default 60)")
    parser.add_argument("--transcript-wait", type=int, default=20, metavar="SECONDS",
                        help="the worker's TRANSCRIPT_WAIT: how long it polls for a transcript (default 20)")
    parser.add_argument("--transcript-delay", type=float, default=4.0, metavar="SECONDS",
                        help="how late the sandbox's transcripts are ready (default 4)")
    parser.add_argument("--drop-webhooks", type=float, default=0.10, metavar="SHARE",
                        help="share of calls whose webhooks are never sent, recovered by reconciliation (default 0.1)")
    parser.add_argument("--console", action="store_true",
                        help="after the run, keep the operator console open on its data until Ctrl-C (prints its URL)")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="also write the calls to this PostgreSQL (postgresql://user@host:5432/db[?schema=...]) "
                             "and show one query's answer at the end (demo/postgres.py)")
    parser.add_argument("--redis-probe", default="127.0.0.1:6379", metavar="HOST:PORT",
                        help="where to look for a running Redis when REDIS_URL is unset (default 127.0.0.1:6379)")
    return parser


def options_from(args: argparse.Namespace, environ: dict[str, str], interactive: bool) -> Options:
    if args.calls < 1 or args.rate <= 0 or args.wait <= 0 or args.transcript_wait < 1:
        raise SystemExit("python -m demo: --calls, --rate, --wait and --transcript-wait must be positive")
    if not 0.0 <= args.drop_webhooks <= 1.0:
        raise SystemExit("python -m demo: --drop-webhooks must be within 0..1")
    return Options(calls=args.calls, rate=args.rate, live=args.live and interactive, wait_s=args.wait,
                   transcript_wait_s=args.transcript_wait, transcript_delay_s=args.transcript_delay,
                   redis_url=environ.get("REDIS_URL") or None, redis_probe=args.redis_probe,
                   drop_webhooks=args.drop_webhooks, console=args.console, postgres_url=args.postgres)


async def _main(options: Options, environ: dict[str, str], console: Console) -> int:
    """Runs the demo in a task that SIGINT and SIGTERM cancel (once); the task cleans up after itself."""
    task = asyncio.create_task(run(options, environ, console))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if not getattr(stop, "called", False):
            stop.called = True  # type: ignore[attr-defined]
            console.print("\n[yellow]Stopping: roles, keys, private Redis...[/]")
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop)
    return await task


def main(argv: list[str] | None = None) -> int:
    environ = dict(os.environ)
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a log or a pipe: wide enough that the summary does not wrap
    options = options_from(build_parser().parse_args(argv), environ, console.is_terminal)
    logs.configure("ERROR")  # the in-process reconcile pass: its findings are in the summary, not the terminal
    return asyncio.run(_main(options, environ, console))


if __name__ == "__main__":
    sys.exit(main())
