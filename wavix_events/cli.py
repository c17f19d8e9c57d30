"""`wavix-events`: one command, a subcommand per role.

    wavix-events serve      the webhook receiver (Litestar on uvicorn)
    wavix-events worker     an arq worker
    wavix-events simulate   the Wavix sandbox
    wavix-events dlq        look at dead letters: list (filtered), show, replay, purge
    wavix-events destinations   each destination's health (failures, backlog, dead letters, paused)
    wavix-events pause / resume NAME   hold a destination's deliveries, then send them in order
    wavix-events replay     re-deliver logged events to a destination since a time
    wavix-events backfill   import past calls from Wavix's CDR export
    wavix-events db migrate create or upgrade the PostgreSQL destinations' tables
    wavix-events trace      one call's timeline (webhooks, jobs, fetches, events, deliveries, alerts)
    wavix-events forget     erase a call, or every call of a number, from every store we own (#25)
    wavix-events accounts   discover sub-accounts (an accounts-file fragment), connect an account's webhooks
    wavix-events console    the operator's console in a browser (needs CONSOLE_TOKEN)

Settings come from the environment (README). One-shot commands (`ONE_SHOT`) print their answer and log only
errors unless `-v`. A command that cannot start says why in one line on stderr, never with a traceback:
exit 2 for configuration (a bad setting or option), 1 for something unreachable or unavailable (Redis, a
port already in use).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contract import accounts, logs
from contract.errors import SettingsError
from contract.settings import Settings
from service.serve import SERVERS

if TYPE_CHECKING:
    from arq.worker import Worker


ONE_SHOT = ("dlq", "destinations", "pause", "resume", "replay", "backfill", "db", "trace", "forget")


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    if not settings.webhook_tokens and not settings.accounts_file:
        raise SettingsError("WEBHOOK_TOKENS", "set at least one secret token (openssl rand -hex 24)")
    accounts.at_start(settings)  # a bad accounts file stops here, naming its line
    from service.serve import run

    return run(host=args.host, port=args.port, workers=args.workers, server=args.server, target=args.app)


def _worker(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    from workers.deliver.route import RouteError
    from workers.runtime.context import destinations_for
    from workers.runtime.settings import create_worker

    if not settings.wavix_api_key and not settings.accounts_file:
        raise SettingsError("WAVIX_API_KEY", "must be set for the workers to fetch CDRs")
    accounts.at_start(settings)  # a bad accounts file stops here, naming its line
    try:
        destinations_for(settings)  # a bad routing file stops here, naming its line, not inside arq
    except RouteError as e:
        raise SettingsError("SINKS_CONFIG", str(e)) from e
    # uvloop, as the receiver runs: arq takes the current loop. Six alternating runs of 4,000 calls (2026-12-08):
    # the worker's CPU per call 1.14 / 1.28 / 1.44 ms on asyncio's loop, 1.03 / 1.05 / 1.39 ms on uvloop.
    asyncio.set_event_loop(uvloop.new_event_loop())
    worker = create_worker(settings, burst=args.burst)
    try:
        worker.run()
    except asyncio.CancelledError:
        # On SIGTERM arq puts jobs still running after JOB_COMPLETION_WAIT back on the queue, then lets
        # their cancellation escape close(): finish its bookkeeping so the exit is clean and they re-run.
        worker.loop.run_until_complete(_settle(worker))
    return 0


async def _settle(worker: Worker) -> None:
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if others:
        await asyncio.wait(others, timeout=5)  # arq's shielded job bookkeeping
    await worker.pool.delete(worker.health_check_key)
    if worker.on_shutdown:
        await worker.on_shutdown(worker.ctx)
    await worker.pool.aclose()


def _dlq(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure_command(settings.log_level, verbose=args.verbose)
    from workers.deliver.admin import AdminError, parse_time
    from workers.operate.dlq import Filters, run

    try:
        filters = Filters(destination=args.destination, reason=args.reason, account=args.account,
                          since_ms=parse_time(args.since) if args.since else None,
                          until_ms=parse_time(args.until) if args.until else None)
    except AdminError as e:
        raise SettingsError("--since/--until", str(e)) from e
    return asyncio.run(run(settings, args.action, args.ids, replay_all=args.all, limit=args.limit, filters=filters,
                           yes=args.yes, as_json=args.json))


def _destinations(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure_command(settings.log_level, verbose=args.verbose)
    from workers.deliver.admin import main

    options = {k: v for k, v in vars(args).items() if k in ("name", "since", "until", "as_json")}
    return asyncio.run(main(settings, args.role, types=tuple(getattr(args, "type", None) or ()), **options))


def _backfill(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure_command(settings.log_level, verbose=args.verbose)
    from workers.fetch.backfill import run

    return run(settings, first=args.first, last=args.last, types=args.type, dry_run=args.dry_run,
               account=args.account)


def _db(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure_command(settings.log_level, verbose=args.verbose)
    from workers.deliver.route import RouteError
    from workers.deliver.sinks.postgres_schema import migrate_destinations
    from workers.runtime.context import destinations_for

    try:
        destinations = destinations_for(settings)
    except RouteError as e:
        raise SettingsError("SINKS_CONFIG", str(e)) from e
    status, lines = asyncio.run(migrate_destinations(destinations, only=args.destination))
    print("\n".join(lines), file=sys.stderr if status == 2 else sys.stdout)
    return status


def _trace(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure_command(settings.log_level, verbose=args.verbose)
    from console.trace import run

    return asyncio.run(run(settings.redis_url, settings.key_prefix, args.call_id, as_json=args.json,
                           accounts=accounts.names_at_start(settings)))  # each account's webhooks (names only)


def _console(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    from console.asgi import Tuning, serve
    from console.web import Thresholds

    return serve(settings, Tuning(refresh_seconds=args.refresh, thresholds=Thresholds(
        queue_age_s=args.queue_alert, quiet_s=args.quiet_alert)))


def _seconds(text: str) -> int:
    """A duration on the command line (`90`, `2m`, `1h`) in whole seconds."""
    from workers.retry import parse_duration

    try:
        return int(parse_duration(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _simulate(args: argparse.Namespace) -> int:
    from sandbox.cli import run

    return run(args)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2), like every other start-up failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {port}")
    return port


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wavix-events", description=__doc__.split("\n\n")[0])
    roles = parser.add_subparsers(dest="role", required=True, metavar="ROLE")

    serve = roles.add_parser("serve", help="run the webhook receiver")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    # For the benchmarks only: the other server measured (Granian), and the app with its baseline route.
    serve.add_argument("--server", choices=SERVERS, default=SERVERS[0], help=argparse.SUPPRESS)
    serve.add_argument("--app", default="service.asgi:app", help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    worker = roles.add_parser("worker", help="run an arq worker")
    worker.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    worker.set_defaults(run=_worker)

    dlq = roles.add_parser("dlq", help="list dead letters, show one, replay them (one, several or all), purge them")
    dlq.add_argument("action", choices=["list", "show", "replay", "purge"])
    dlq.add_argument("ids", nargs="*", help="entry ids to show or replay (from `dlq list`)")
    dlq.add_argument("--all", action="store_true", help="replay every dead letter the filters select")
    dlq.add_argument("--limit", type=_positive, help="at most this many, oldest first: list (default 100), replay "
                     "--all and purge (default: every letter selected)")
    dlq.add_argument("--destination", help="only deliveries to this destination")
    dlq.add_argument("--account", help="only the letters of this account's calls (ACCOUNTS_FILE's names)")
    dlq.add_argument("--reason", help="only letters whose reason contains this text")
    dlq.add_argument("--since", help="written at or after: ISO 8601 time or an age (2h)")
    dlq.add_argument("--until", help="written at or before: ISO 8601 time or an age (30m)")
    dlq.add_argument("--yes", action="store_true", help="purge without asking")
    dlq.add_argument("--json", action="store_true", help="list: the letters and the total as JSON")
    dlq.set_defaults(run=_dlq)

    destinations = roles.add_parser("destinations", help="each destination's health, in a table")
    destinations.add_argument("--json", dest="as_json", action="store_true", help="every field, as JSON")
    destinations.set_defaults(run=_destinations)
    for verb, text in (("pause", "park a destination's deliveries (no tries spent) until resume"),
                       ("resume", "send a paused destination's parked deliveries, oldest first")):
        command = roles.add_parser(verb, help=text)
        command.add_argument("name", help="a destination of the routing file")
        command.set_defaults(run=_destinations)
    replay = roles.add_parser("replay", help="re-deliver logged events (same ids) to one destination")
    replay.add_argument("--destination", dest="name", required=True, help="a destination of the routing file")
    replay.add_argument("--since", required=True, help="ISO 8601 time (UTC unless an offset) or an age (2h)")
    replay.add_argument("--until", default="", help="ISO 8601 time or an age (default: now)")
    replay.add_argument("--type", action="append", help="event type glob, repeatable (default: every type)")
    replay.set_defaults(run=_destinations)

    backfill = roles.add_parser("backfill", help="import past calls from Wavix's CDR export (resumable, idempotent)")
    backfill.add_argument("--from", dest="first", required=True, metavar="YYYY-MM-DD", help="first UTC day")
    backfill.add_argument("--to", dest="last", required=True, metavar="YYYY-MM-DD", help="last UTC day, inclusive")
    backfill.add_argument("--type", choices=["placed", "received", "both"], default="both", help="default both")
    backfill.add_argument("--dry-run", action="store_true", help="only count: read-only, queues nothing")
    backfill.add_argument("--account", default="", help="only this account (ACCOUNTS_FILE; default: each in turn)")
    backfill.set_defaults(run=_backfill)

    db = roles.add_parser("db", help="the PostgreSQL destinations' tables: `db migrate` creates or upgrades them")
    db.add_argument("action", choices=["migrate"])
    db.add_argument("--destination", help="only this destination (default: every postgresql:// one)")
    db.set_defaults(run=_db)

    trace = roles.add_parser("trace", help="print what happened to one call, step by step")
    trace.add_argument("call_id")
    trace.add_argument("--json", action="store_true", help="the timeline as JSON")
    trace.set_defaults(run=_trace)

    from wavix_events.forget import add_arguments as add_forget  # erasure (issue #25)

    add_forget(roles)

    from wavix_events.accounts import add_arguments as add_account_commands  # discover, connect (issue #26)

    add_account_commands(roles)

    for name in ONE_SHOT:  # they print their answer; their logs are quiet but for errors (contract/logs.py)
        roles.choices[name].add_argument("-v", "--verbose", action="store_true", help="show its logs (LOG_LEVEL)")

    console = roles.add_parser("console", help="run the console (CONSOLE_HOST:CONSOLE_PORT, login with CONSOLE_TOKEN)")
    console.add_argument("--refresh", type=_seconds, default=30, metavar="DURATION",
                         help="the overview and the lists reload themselves this often (default 30s; 0: never)")
    console.add_argument("--queue-alert", type=_seconds, default=120, metavar="DURATION",
                         help="banner when a queued job has been due this long (default 2m)")
    console.add_argument("--quiet-alert", type=_seconds, default=600, metavar="DURATION",
                         help="banner when no event was built this long while calls wait (default 10m)")
    console.set_defaults(run=_console)

    try:
        from sandbox.cli import add_arguments
    except ImportError:
        pass
    else:
        simulate = roles.add_parser("simulate", help="run the Wavix sandbox (a simulator of Wavix's API)")
        add_arguments(simulate)
        simulate.set_defaults(run=_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.run
    role = f"wavix-events {args.role}"
    try:
        return command(args)
    except SettingsError as e:
        return _fail(2, f"{role}: configuration error: {e}")
    except (RedisConnectionError, RedisTimeoutError) as e:
        return _fail(1, f"{role}: cannot reach Redis (REDIS_URL): {e}")
    except OSError as e:  # a port in use, an address not on this host
        return _fail(1, f"{role}: {e}")
    except KeyboardInterrupt:
        return 130


def _fail(status: int, line: str) -> int:
    print(" ".join(line.split()), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
