"""`wavix-events forget`: erase a caller's data (workers/privacy/erase.py), print what went, exit 0 (1: calls busy).

    wavix-events forget --call CALL_ID [--dry-run] [--by NAME]
    wavix-events forget --number +E164 [--from DATE] [--to DATE] [--dry-run] [--by NAME]

DATE is a day (2026-06-01: --from at its start, --to at its end, UTC) or an ISO 8601 time. `--by` names who
asked, for the audit line (default: this machine's user). The summary names no phone number, and says how many
of the erased calls were of each account when there are several (issue #26: each account's destinations are told
of their own).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from contract import accounts, logs, redisurl
from contract.settings import Settings
from workers.privacy.erase import Eraser, Report, Request
from workers.privacy.erased import normal_number
from workers.privacy.forming import key_of


def add_arguments(roles: Any) -> None:
    """The `forget` subcommand, on the CLI's subparsers."""
    forget = roles.add_parser("forget", help="erase a call, or every call of a number, from every store we own")
    target = forget.add_mutually_exclusive_group(required=True)
    target.add_argument("--call", metavar="CALL_ID", help="one call")
    target.add_argument("--number", metavar="+E164", help="every call from or to this number")
    forget.add_argument("--from", dest="since", type=_start, metavar="DATE", help="calls made on or after (--number)")
    forget.add_argument("--to", dest="until", type=_end, metavar="DATE", help="calls made on or before (--number)")
    forget.add_argument("--dry-run", action="store_true", help="find and count only: nothing is changed")
    forget.add_argument("--by", default="", help="who asked, for the audit line (default: this user)")
    forget.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure_command(settings.log_level, verbose=args.verbose)
    if args.call is None and normal_number(args.number) is None:
        print(f"wavix-events forget: --number: not a phone number in E.164 form: {args.number!r}", file=sys.stderr)
        return 2
    if args.call is not None and (args.since or args.until):
        print("wavix-events forget: --from and --to go with --number", file=sys.stderr)
        return 2
    request = Request(call_id=args.call, number=normal_number(args.number) if args.number else None,
                      since_ms=args.since, until_ms=args.until, dry_run=args.dry_run, by=args.by or _user())
    names = accounts.names_at_start(settings)  # each account's keys of a call are erased; its secrets are not needed
    report = asyncio.run(_erase(settings, request, names))
    print(summary(request, report))
    return 1 if report.busy else 0


async def _erase(settings: Settings, request: Request, names: tuple[str, ...]) -> Report:
    from workers.runtime.context import destinations_for

    redis = redisurl.client(settings.redis_url)
    try:
        return await Eraser(redis, settings, destinations_for(settings), key_of(settings.redact_key),
                            names).run(request)
    finally:
        await redisurl.close(redis)


def summary(request: Request, report: Report) -> str:
    """What the run did, in a few lines, with no number."""
    verb = "would erase" if request.dry_run else "erased"
    lines = [f"{verb} {len(report.calls)} call(s)" + (f": {', '.join(report.calls)}" if request.call_id else "")]
    if set(report.accounts) - {accounts.DEFAULT}:
        lines.append("  of account(s) " + ", ".join(f"{a} ({n})" for a, n in sorted(report.accounts.items())))
    if report.counts:
        lines.append("  " + ", ".join(f"{store}: {n}" for store, n in sorted(report.counts.items())))
    if report.told:
        lines.append("  wavix.call.erased queued to " + ", ".join(f"{d} ({n})" for d, n in sorted(report.told.items())))
    if report.busy:
        lines.append(f"  {len(report.busy)} call(s) busy (a job is running): run forget again once it has ended: "
                     + ", ".join(report.busy))
    if report.audit_id:
        lines.append(f"  audit: {report.audit_id}")
    return "\n".join(lines)


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _moment(text: str, *, end: bool) -> int:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a day or an ISO 8601 time: {text!r}") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        moment = datetime.combine(day, time(), UTC) + (timedelta(days=1, milliseconds=-1) if end else timedelta())
    return int(moment.timestamp() * 1000)


def _start(text: str) -> int:
    return _moment(text, end=False)


def _end(text: str) -> int:
    return _moment(text, end=True)
