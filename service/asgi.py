"""The ASGI entry point for servers that import an app factory: settings come from the environment."""

from __future__ import annotations

from litestar import Litestar

from contract.settings import Settings
from service.app import create_app


def app() -> Litestar:
    return create_app(Settings.from_env())
