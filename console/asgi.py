"""The console's entry point for the ASGI server, and the one check it makes before serving.

`options_from(settings)` refuses a console without CONSOLE_TOKEN (a `SettingsError`: the command line turns
it into one line and exit 2). `app()` is the factory the server (service/serve.py) imports in each of its processes.
The command line's own options (`--refresh`, `--queue-alert`, `--quiet-alert`: `Tuning`) reach it through
`serve`, which keeps them here before the server imports this module's `app` in the same, single, process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from litestar import Litestar

from console.app import ConsoleOptions, create_app
from console.web import Thresholds
from contract import accounts, logs, tracing
from contract.errors import SettingsError
from contract.settings import Settings

MIN_TOKEN = 16
log = logs.get("console")


@dataclass(frozen=True)
class Tuning:
    """The console's command-line options: auto-refresh (s, 0: off) and when the banner speaks."""

    refresh_seconds: int = 30
    thresholds: Thresholds = field(default_factory=Thresholds)


_tuning = [Tuning()]  # serve()'s, for app() in the same process


def options_from(settings: Settings, tuning: Tuning | None = None) -> ConsoleOptions:
    if not settings.console_token:
        raise SettingsError("CONSOLE_TOKEN", "the console needs a login: set a token (openssl rand -hex 24)")
    if len(settings.console_token) < MIN_TOKEN:
        raise SettingsError("CONSOLE_TOKEN", f"must be at least {MIN_TOKEN} characters long")
    chosen = tuning or Tuning()
    return ConsoleOptions(token=settings.console_token, allow_actions=settings.console_allow_actions,
                          refresh_seconds=chosen.refresh_seconds, thresholds=chosen.thresholds)


def destination_names(settings: Settings) -> tuple[str, ...]:
    """The configured destinations' names only: their URLs may hold passwords, so they never reach a page."""
    from workers.runtime.context import destinations_for

    try:
        return tuple(d.name for d in destinations_for(settings))
    except Exception:  # a broken routing file is the worker's to report; the console still shows the rest
        return ()


def account_names(settings: Settings) -> tuple[str, ...]:
    """ACCOUNTS_FILE's account names only (the console holds none of their keys or tokens); () when it cannot be
    read, which the receiver and workers report: the filters then offer the accounts the calls name."""
    try:
        return accounts.names(settings)
    except accounts.AccountsError as e:
        log.warning("console.accounts_unread", error=str(e))
        return ()


def app() -> Litestar:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    tracing.setup(settings.otel_exporter_otlp_endpoint, "wavix-events-console")
    return create_app(settings, options_from(settings, _tuning[0]), destination_names(settings),
                      account_names(settings))


def serve(settings: Settings, tuning: Tuning | None = None) -> int:
    """`wavix-events console`: checks the token, then serves on CONSOLE_HOST:CONSOLE_PORT until stopped."""
    options_from(settings, tuning)
    _tuning[0] = tuning or Tuning()
    from service.serve import run

    return run(host=settings.console_host, port=settings.console_port, target="console.asgi:app")
