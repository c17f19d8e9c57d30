"""The console's entry point for the ASGI server, and the one check it makes before serving.

`options_from(settings)` refuses a console without CONSOLE_TOKEN (a `SettingsError`: the command line turns
it into one line and exit 2). `app()` is the factory the server (service/serve.py) imports in each of its processes.
"""

from __future__ import annotations

from litestar import Litestar

from console.app import ConsoleOptions, create_app
from contract import logs, tracing
from contract.errors import SettingsError
from contract.settings import Settings

MIN_TOKEN = 16


def options_from(settings: Settings) -> ConsoleOptions:
    if not settings.console_token:
        raise SettingsError("CONSOLE_TOKEN", "the console needs a login: set a token (openssl rand -hex 24)")
    if len(settings.console_token) < MIN_TOKEN:
        raise SettingsError("CONSOLE_TOKEN", f"must be at least {MIN_TOKEN} characters long")
    return ConsoleOptions(token=settings.console_token, allow_actions=settings.console_allow_actions)


def destination_names(settings: Settings) -> tuple[str, ...]:
    """The configured destinations' names only: their URLs may hold passwords, so they never reach a page."""
    from workers.context import destinations_for

    try:
        return tuple(d.name for d in destinations_for(settings))
    except Exception:  # a broken routing file is the worker's to report; the console still shows the rest
        return ()


def app() -> Litestar:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    tracing.setup(settings.otel_exporter_otlp_endpoint, "wavix-events-console")
    return create_app(settings, options_from(settings), destination_names(settings))


def serve(settings: Settings) -> int:
    """`wavix-events console`: checks the token, then serves on CONSOLE_HOST:CONSOLE_PORT until stopped."""
    options_from(settings)
    from service.serve import run

    return run(host=settings.console_host, port=settings.console_port, target="console.asgi:app")
