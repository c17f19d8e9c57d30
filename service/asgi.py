"""The ASGI entry point for servers that import an app factory: settings come from the environment.

The factory runs in each server worker process (the server spawns them), so logging is configured here:
a configuration made in the parent process would not reach the process that serves requests. The same goes
for the collector's settings (contract/heap.py), made once the app is built.
"""

from __future__ import annotations

from litestar import Litestar

from contract import heap, logs, tracing
from contract.settings import Settings
from service.app import create_app


def app() -> Litestar:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    tracing.setup(settings.otel_exporter_otlp_endpoint, "wavix-events-receiver")  # off unless set
    app = create_app(settings)
    heap.settle()  # the app's ~63,000 objects out of the collector's walks: ~13 µs a webhook (contract/heap.py)
    return app
