"""The benchmark's baseline worker: our worker's exact options, with one job that does nothing."""

from __future__ import annotations

import sys
from typing import Any

from arq import func

from contract import logs
from contract.jobs import PROCESS_CALL
from contract.settings import Settings
from workers.runtime.settings import create_worker


async def noop(ctx: dict[str, Any], arg: Any) -> str:
    return "ok"


def main() -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    create_worker(settings, functions=[func(noop, name=PROCESS_CALL)], on_startup=None, on_shutdown=None).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
