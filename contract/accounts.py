"""Accounts: which Wavix accounts this deployment serves, and the one registry every stage asks about them.

Without ACCOUNTS_FILE there is one account, `default`: WEBHOOK_TOKENS, WAVIX_API_KEY and WAVIX_API_URL, as
before accounts existed. With it, the YAML file names each account (errors name the file and line, e.g.
`accounts.yaml:7: account "beta": token_env: environment variable BETA_TOKEN is not set`):

    accounts:
      - name: alpha                  # [a-z0-9][a-z0-9_-]*, unique: in every event, metric label and log line
        api_key_env: ALPHA_KEY       # the variable that holds its API key: never the key in this file
        token_env: ALPHA_TOKEN       # the variable that holds its webhook token(s), comma-separated to rotate
      - name: beta
        sub_account: 123             # its key read at run time from the master account's listing
                                     #   (WAVIX_MASTER_API_KEY, every ACCOUNT_KEYS_REFRESH seconds)
        token_sha256: [9f86d081...]  # or the SHA-256 (hex) of each token: nothing secret in the file
        api_url: https://api.wavix.com   # optional: WAVIX_API_URL
        reconcile: false             # optional: no reconciliation passes for it (default: on)
        reconcile_interval: 10m      # optional: its own RECONCILE_INTERVAL (30s, 10m, 1h or seconds)
        transcripts: false           # optional: no transcript polling (Wavix's transcription webhook still counts)
        alert_channel: "#beta-calls" # optional: its alerts in this Slack channel (SLACK_BOT_TOKEN)
        alert_webhook_env: BETA_SLACK   # optional: or through this incoming webhook (the variable names the URL)
        max_in_flight: 8             # optional: Wavix requests at once per worker process (ACCOUNT_MAX_IN_FLIGHT)

A webhook's token names its account (`Accounts.for_token`): the receiver hashes the token once (SHA-256) and
looks the digest up in a dict, so 100 accounts cost what one does, and tokens must be unique across
accounts. A token never leaves this module in clear: only digests are kept. The job carries the account's
name; the call's Redis keys (dedup mark, job id, webhook list) are scoped by it (`contract.intake.scoped`),
so a token of one account can neither queue, mark seen nor read another account's call, and the worker
fetches with the key of the job's account alone. An account named `default` keeps the unscoped keys of a
deployment without accounts (migrate by naming the existing account `default`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from contract import yamlfile
from contract.errors import SettingsError
from contract.yamlfile import Fields

if TYPE_CHECKING:  # contract.settings imports (through privacy and jobs) this module
    from contract.settings import Settings

DEFAULT = "default"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MIN_TOKEN = 16
_HEX = re.compile(r"^[0-9a-f]{64}$")
_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
FIELDS = ("name", "api_key_env", "sub_account", "token_env", "token_sha256", "api_url", "reconcile",
          "reconcile_interval", "transcripts", "alert_channel", "alert_webhook_env", "max_in_flight")


class AccountsError(ValueError):
    """The accounts file is unusable; the message starts with `file:line:` (or names the variable)."""


def token_digest(token: str) -> str:
    """What a token is known by: its SHA-256, hex (what `token_sha256` lists)."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


@dataclass(frozen=True)
class Account:
    """One Wavix account: its name, its key (or where it comes from), its tokens' digests, its own settings."""

    name: str
    api_key: str = field(default="", repr=False)  # "" while a `sub_account`'s key is still to be read
    token_digests: frozenset[str] = field(default=frozenset(), repr=False)
    token_env: str | None = None  # the variable its tokens came from (`accounts connect` reads the last one)
    sub_account: int | None = None
    api_url: str | None = None  # None: WAVIX_API_URL
    reconcile: bool = True
    reconcile_interval: int | None = None  # None: RECONCILE_INTERVAL
    transcripts: bool = True
    alert_channel: str | None = None
    alert_webhook_url: str | None = field(default=None, repr=False)
    max_in_flight: int | None = None  # None: ACCOUNT_MAX_IN_FLIGHT
    line: int = 0  # where the file declares it (0: the default account)

    @property
    def key_at_run_time(self) -> bool:
        """Whether its key comes from the master account's listing (no `api_key_env`)."""
        return not self.api_key and self.sub_account is not None


class Accounts:
    """The accounts of one load: by name, and by the digest of each webhook token. Immutable."""

    def __init__(self, accounts: Sequence[Account], *, source: str = "") -> None:
        self.all: tuple[Account, ...] = tuple(accounts)
        self.source = source  # the file, or "" for the default account
        self._named = {a.name: a for a in self.all}
        self._by_digest = {d: a for a in self.all for d in a.token_digests}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.all)

    def named(self, name: str) -> Account | None:
        return self._named.get(name)

    def for_token(self, token: str) -> Account | None:
        """The account whose token this is; None for an unknown token. One hash and one dict lookup: the
        time does not depend on which stored token is nearest, only on the SHA-256 of the given one."""
        return self._by_digest.get(hashlib.sha256(token.encode()).hexdigest())

    def with_keys(self, keys: Mapping[int, str]) -> Accounts:
        """These accounts with the run-time keys of their sub-accounts filled in (`sub_account` -> api_key)."""
        fresh = [a if not a.key_at_run_time or a.sub_account not in keys
                 else replace(a, api_key=keys[a.sub_account]) for a in self.all]  # type: ignore[index]
        return Accounts(fresh, source=self.source)


def single(*, tokens: Sequence[str], api_key: str) -> Accounts:
    """No accounts file: one account, `default`, with WEBHOOK_TOKENS and WAVIX_API_KEY."""
    return Accounts([Account(name=DEFAULT, api_key=api_key, token_digests=frozenset(map(token_digest, tokens)))])


def from_settings(settings: Settings, env: Mapping[str, str] | None = None) -> Accounts:
    """ACCOUNTS_FILE's accounts, or the one `default` account; `AccountsError` when the file is unusable."""
    from contract.settings import environment

    if not settings.accounts_file:
        return single(tokens=settings.webhook_tokens, api_key=settings.wavix_api_key)
    loaded = load_accounts(settings.accounts_file, environment() if env is None else env,
                           master_key=bool(settings.wavix_master_api_key))
    for account in loaded.all:
        if account.reconcile_interval and account.reconcile_interval >= settings.reconcile_lookback:
            raise AccountsError(f'{loaded.source}:{account.line}: account "{account.name}": reconcile_interval must be '
                                f"shorter than RECONCILE_LOOKBACK ({settings.reconcile_lookback} s), or calls could "
                                "fall between two passes")
    return loaded


def at_start(settings: Settings, env: Mapping[str, str] | None = None) -> Accounts:
    """`from_settings` for a role that is starting: an unusable file is a `SettingsError` naming ACCOUNTS_FILE."""
    try:
        return from_settings(settings, env)
    except AccountsError as e:
        raise SettingsError("ACCOUNTS_FILE", str(e)) from e


def names(settings: Settings) -> tuple[str, ...]:
    """The accounts' names alone, for the roles that hold none of their secrets (the console, `trace`, `forget`):
    the file's well-formed `name`s in order, nothing else read or checked (the receiver and workers check the
    file); (`default`,) without ACCOUNTS_FILE. An unreadable file, or one naming no account, is an `AccountsError`."""
    if not settings.accounts_file:
        return (DEFAULT,)
    source = Path(settings.accounts_file)
    try:
        loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as e:
        raise AccountsError(f"{source}: cannot read the accounts file ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise AccountsError(f"{source.name}: not valid YAML") from e
    items = loaded.get("accounts") if isinstance(loaded, dict) else None
    found = [a["name"] for a in items if isinstance(a, dict) and NAME.match(str(a.get("name", "")))] \
        if isinstance(items, list) else []
    if not found:
        raise AccountsError(f'{source.name}: names no account (the file lists "accounts", each with a "name")')
    return tuple(dict.fromkeys(str(n) for n in found))


def names_at_start(settings: Settings) -> tuple[str, ...]:
    """`names` for a command that is starting (`trace`, `forget`): an unreadable file is a `SettingsError`."""
    try:
        return names(settings)
    except AccountsError as e:
        raise SettingsError("ACCOUNTS_FILE", str(e)) from e


def load_accounts(path: str | Path, env: Mapping[str, str], *, master_key: bool = False) -> Accounts:
    """The file's accounts. `master_key`: whether WAVIX_MASTER_API_KEY is set (`sub_account` keys need it)."""
    text, source = yamlfile.read(path, AccountsError, "accounts file")
    return parse_accounts(text, env, source=source, master_key=master_key)


def parse_accounts(text: str, env: Mapping[str, str], *, source: str = "accounts.yaml",
                   master_key: bool = False) -> Accounts:
    """Parses and checks the YAML `text`; every error is one line starting with `source:line:`."""
    return yamlfile.parse(text, source, AccountsError, lambda loader, root: Accounts(
        _Reader(loader, source, env, master_key).document(root), source=source))


class _Reader(yamlfile.NodeReader):
    """Walks the YAML node tree (not the plain data) so every error can name its line."""

    def __init__(self, loader: yaml.SafeLoader, source: str, env: Mapping[str, str], master_key: bool) -> None:
        super().__init__(loader, source, AccountsError)
        self._env, self._master_key = env, master_key

    def document(self, root: yaml.Node | None) -> list[Account]:
        if not isinstance(root, yaml.MappingNode) or [self.scalar(k) for k, _ in root.value] != ["accounts"]:
            raise self.fail(root, "", 'the file must be one mapping with the single field "accounts"')
        items = root.value[0][1]
        if not isinstance(items, yaml.SequenceNode) or not items.value:
            raise self.fail(items, "", '"accounts" must be a non-empty list')
        accounts = [self.account(node) for node in items.value]
        self.unique(accounts)
        return accounts

    def unique(self, accounts: list[Account]) -> None:
        names: dict[str, Account] = {}
        digests: dict[str, Account] = {}
        subs: dict[int, Account] = {}
        for a in accounts:
            where = f'account "{a.name}": '
            if a.name in names:
                raise AccountsError(f"{self._source}:{a.line}: {where}name already used on line {names[a.name].line}")
            names[a.name] = a
            for digest in a.token_digests:
                if digest in digests:
                    other = digests[digest]
                    raise AccountsError(f'{self._source}:{a.line}: {where}a token is also account "{other.name}"\'s '
                                        f"(line {other.line}): each token names one account")
                digests[digest] = a
            if a.sub_account is not None:
                if a.sub_account in subs:
                    raise AccountsError(f"{self._source}:{a.line}: {where}sub_account {a.sub_account} is also "
                                        f'account "{subs[a.sub_account].name}"\'s')
                subs[a.sub_account] = a

    def variable(self, fields: Fields, name: str, where: str) -> str | None:
        """The value of the environment variable the field `name` names; None when the field is absent."""
        if name not in fields:
            return None
        node = fields[name][1]
        variable = self.text(node, where, name)
        value = self._env.get(variable, "").strip()
        if not value:
            raise self.fail(node, where, f"{name}: environment variable {variable} is not set")
        return value

    def account(self, node: yaml.Node) -> Account:
        line = node.start_mark.line + 1
        where, fields, name = self.named(node, "account", FIELDS)
        if not NAME.match(name):
            raise self.fail(fields["name"][1], where, "name: lower-case letters, digits, '_' and '-' only "
                            "(at most 63, starting with a letter or digit)")
        sub = self.whole(fields["sub_account"][1], where, "sub_account") if "sub_account" in fields else None
        key = self.variable(fields, "api_key_env", where)
        if key is None and sub is None:
            raise self.fail(node, where, 'give "api_key_env" (the variable with its key) or "sub_account" (its key '
                            "from the master account's listing)")
        if key is None and not self._master_key:
            raise self.fail(fields["sub_account"][1], where, "sub_account without api_key_env needs "
                            "WAVIX_MASTER_API_KEY (its key is read from the master account's listing)")
        interval = fields.get("reconcile_interval")
        return Account(
            name=name, api_key=key or "", token_digests=self.tokens(node, fields, where), sub_account=sub,
            token_env=self.text(fields["token_env"][1], where, "token_env") if "token_env" in fields else None,
            api_url=self.url(fields["api_url"][1], where) if "api_url" in fields else None,
            reconcile=self.flag(fields, "reconcile", where), transcripts=self.flag(fields, "transcripts", where),
            reconcile_interval=self.seconds(interval[1], where) if interval else None,
            alert_channel=self.text(fields["alert_channel"][1], where, "alert_channel")
            if "alert_channel" in fields else None,
            alert_webhook_url=self.variable(fields, "alert_webhook_env", where),
            max_in_flight=self.whole(fields["max_in_flight"][1], where, "max_in_flight")
            if "max_in_flight" in fields else None,
            line=line,
        )

    def tokens(self, node: yaml.Node, fields: Fields, where: str) -> frozenset[str]:
        digests: set[str] = set()
        given = self.variable(fields, "token_env", where)
        for token in (t.strip() for t in (given or "").split(",")):
            if token and len(token) < MIN_TOKEN:
                raise self.fail(fields["token_env"][1], where, f"token_env: each token must be at least {MIN_TOKEN} "
                                "characters long")
            if token:
                digests.add(token_digest(token))
        if "token_sha256" in fields:
            listed = fields["token_sha256"][1]
            items = listed.value if isinstance(listed, yaml.SequenceNode) else [listed]
            for item in items:
                value = str(self.scalar(item)).strip().lower()
                if not _HEX.match(value):
                    raise self.fail(item, where, "token_sha256: each must be 64 hex digits (sha256sum of the token)")
                digests.add(value)
        if not digests:
            raise self.fail(node, where, 'give "token_env" (the variable with its webhook token) or "token_sha256"')
        return frozenset(digests)

    def flag(self, fields: Fields, name: str, where: str) -> bool:
        if name not in fields:
            return True
        value = self.scalar(fields[name][1])
        if not isinstance(value, bool):
            raise self.fail(fields[name][1], where, f'"{name}" must be true or false')
        return value

    def whole(self, node: yaml.Node, where: str, name: str) -> int:
        value = self.scalar(node)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(node, where, f'"{name}" must be a whole number above 0')
        return value

    def seconds(self, node: yaml.Node, where: str) -> int:
        match = _DURATION.match(str(self.scalar(node)).strip().lower())
        if match is None or int(match.group(1)) <= 0:
            raise self.fail(node, where, '"reconcile_interval" must be a duration above 0 (30s, 10m, 1h, or seconds)')
        return int(match.group(1)) * _UNITS[match.group(2)]

    def url(self, node: yaml.Node, where: str) -> str:
        url = self.text(node, where, "api_url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(node, where, "api_url: must be an http(s) URL")
        return url
