"""`wavix-events accounts discover` and `wavix-events accounts connect NAME --url https://OUR-HOST`.

    discover [--all] [--keys-at-run-time]
        lists the master account's sub-accounts (WAVIX_MASTER_API_KEY; `GET /v1/sub-organizations`, every
        page; enabled ones unless --all) and prints an accounts-file fragment, one entry each: a name made
        from the sub-account's, its `sub_account` id, and the variables to set (`api_key_env`, `token_env`).
        With --keys-at-run-time the entries have no `api_key_env`: the workers read each key from the same
        listing (ACCOUNT_KEYS_REFRESH). Sub-accounts already in ACCOUNTS_FILE are named in a comment, not
        repeated. No key is ever printed.
    connect NAME --url URL [--dry-run]
        points the account's `post-call` and `on-call` webhooks at URL/webhooks/wavix/<its token> through
        `/v1/calls/webhooks` with the account's own key, showing what each pointed at before. The token is the
        last of its `token_env` (list the new one last while rotating), or, for an account known only by
        `token_sha256`, one line on stdin (checked against the digests). Printed URLs show a token's last
        four characters only. --dry-run shows the change and makes none.

Exit status: 0 done, 1 Wavix refused or was unreachable, 2 configuration (a setting, an unknown account).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any, TextIO
from urllib.parse import urlsplit

from contract import accounts, logs
from contract.errors import SettingsError
from contract.settings import Settings, environment
from workers.fetch.subaccounts import EVENT_TYPES, AccountApi, ApiError, SubAccount

_SLUG = re.compile(r"[^a-z0-9]+")
_LONG_SEGMENT = re.compile(r"/([A-Za-z0-9_\-.~]{16,})(?=/|$)")


def add_arguments(roles: Any) -> None:
    """The `accounts` command and its two subcommands, on the CLI's subparsers."""
    command = roles.add_parser("accounts", help="discover sub-accounts, connect an account's webhooks")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    discover = actions.add_parser("discover", help="print an accounts-file fragment for the master's sub-accounts")
    discover.add_argument("--all", action="store_true", help="disabled sub-accounts too (default: enabled only)")
    discover.add_argument("--keys-at-run-time", action="store_true",
                          help="no api_key_env: the workers read each key from the listing (WAVIX_MASTER_API_KEY)")
    connect = actions.add_parser("connect", help="point an account's post-call and on-call webhooks at us")
    connect.add_argument("name", help="an account of ACCOUNTS_FILE")
    connect.add_argument("--url", required=True, help="the receiver's public base URL, e.g. https://hooks.example.com")
    connect.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    for action in (discover, connect):
        action.add_argument("-v", "--verbose", action="store_true", help="show its logs (LOG_LEVEL)")
        action.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None, stdin: TextIO | None = None) -> int:
    settings = Settings.from_env()
    logs.configure_command(settings.log_level, verbose=args.verbose)
    out = out or sys.stdout
    try:
        if args.action == "discover":
            return asyncio.run(discover(settings, out, every=args.all, keys_at_run_time=args.keys_at_run_time))
        return asyncio.run(connect(settings, args.name, args.url, out, dry_run=args.dry_run, stdin=stdin or sys.stdin))
    except ApiError as e:
        print(f"wavix-events accounts {args.action}: Wavix: {e}", file=sys.stderr)
        return 1


async def discover(settings: Settings, out: TextIO, *, every: bool = False, keys_at_run_time: bool = False) -> int:
    if not settings.wavix_master_api_key:
        raise SettingsError("WAVIX_MASTER_API_KEY", "the master account's key lists its sub-accounts")
    api = AccountApi.open(settings, settings.wavix_master_api_key)
    try:
        listed = await api.sub_accounts(status=None if every else "enabled")
    finally:
        await api.aclose()
    print(fragment(listed, _known(settings), keys_at_run_time=keys_at_run_time, every=every), end="", file=out)
    return 0


def _known(settings: Settings) -> dict[int, str]:
    """Sub-account id -> account name, for those ACCOUNTS_FILE has already (none when it cannot be read)."""
    if not settings.accounts_file:
        return {}
    try:
        loaded = accounts.from_settings(settings)
    except accounts.AccountsError:
        return {}
    return {a.sub_account: a.name for a in loaded.all if a.sub_account is not None}


def fragment(listed: list[SubAccount], known: dict[int, str], *, keys_at_run_time: bool, every: bool) -> str:
    """The accounts-file lines for the listed sub-accounts not in `known`; never a key."""
    which = "enabled and disabled" if every else "enabled"
    lines = [f"# {len(listed)} sub-account(s) of the master account ({which}); "
             f"{len(known)} already in ACCOUNTS_FILE.", "accounts:"]
    names = set(known.values())
    fresh = [s for s in sorted(listed, key=lambda s: s.id) if s.id not in known]
    for sub in sorted(listed, key=lambda s: s.id):
        if sub.id in known:
            lines.append(f'  # sub-account {sub.id} "{_comment(sub.name)}" is account "{known[sub.id]}" already')
    for sub in fresh:
        name = _name_for(sub, names)
        names.add(name)
        variable = name.upper().replace("-", "_")
        lines.append(f'  - name: {name}                # sub-account {sub.id} "{_comment(sub.name)}" ({sub.status})')
        lines.append(f"    sub_account: {sub.id}")
        if not keys_at_run_time:
            lines.append(f"    api_key_env: {variable}_KEY      # its api_key from the listing (never in this file)")
        lines.append(f"    token_env: {variable}_TOKEN      # a new secret: openssl rand -hex 24")
    if not fresh:
        lines.append("  # nothing new")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    return " ".join(text.replace('"', "'").split())[:60]


def _name_for(sub: SubAccount, taken: set[str]) -> str:
    base = _SLUG.sub("-", sub.name.lower()).strip("-")[:50] or f"sub-{sub.id}"
    name = base if accounts.NAME.match(base) and base not in taken else f"{base}-{sub.id}"
    return name if accounts.NAME.match(name) else f"sub-{sub.id}"


async def connect(settings: Settings, name: str, url: str, out: TextIO, *, dry_run: bool, stdin: TextIO) -> int:
    loaded = accounts.at_start(settings)
    account = loaded.named(name)
    if account is None:
        raise SettingsError("NAME", f"no account {name!r} (known: {', '.join(loaded.names)})")
    base = urlsplit(url)
    if base.scheme not in ("http", "https") or not base.hostname or base.query:
        raise SettingsError("--url", "the receiver's base URL, http(s)://host[:port][/path], no query")
    token = _token(account, stdin)
    target = f"{url.rstrip('/')}/webhooks/wavix/{token}"
    key = account.api_key or await _listed_key(settings, account)
    api = AccountApi.open(settings, key, account.api_url)
    try:
        before = await api.webhooks()
        print(f"account {account.name}" + (f" (sub-account {account.sub_account})" if account.sub_account else ""),
              file=out)
        for event_type in EVENT_TYPES:
            old = before.get(event_type)
            change = "unchanged" if old == target else ("would set" if dry_run else "set")
            print(f"  {event_type:<9}  before: {shown(old) if old else '(none)'}", file=out)
            print(f"  {'':<9}  {change}: {shown(target)}", file=out)
            if old != target and not dry_run:
                await api.set_webhook(event_type, target, replacing=old is not None)
    finally:
        await api.aclose()
    if dry_run:
        print("dry run: nothing changed", file=out)
    return 0


def shown(url: str) -> str:
    """`url` with every long path segment (a token) cut to its last four characters."""
    return _LONG_SEGMENT.sub(lambda m: "/…" + m.group(1)[-4:], url)


def _token(account: accounts.Account, stdin: TextIO) -> str:
    if account.token_env:
        tokens = [t.strip() for t in environment().get(account.token_env, "").split(",") if t.strip()]
        if tokens:
            return tokens[-1]
    given = stdin.readline().strip()
    if not given or accounts.token_digest(given) not in account.token_digests:
        raise SettingsError("token", f'account "{account.name}" is known by token_sha256 only: give one of its '
                            "tokens on stdin (it must match a digest)")
    return given


async def _listed_key(settings: Settings, account: accounts.Account) -> str:
    if not settings.wavix_master_api_key:
        raise SettingsError("WAVIX_MASTER_API_KEY", f'account "{account.name}" takes its key from the listing')
    api = AccountApi.open(settings, settings.wavix_master_api_key)
    try:
        for sub in await api.sub_accounts(status=None):
            if sub.id == account.sub_account and sub.api_key:
                return sub.api_key
    finally:
        await api.aclose()
    raise SettingsError("sub_account", f"the master account does not list sub-account {account.sub_account}")
