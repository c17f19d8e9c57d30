"""The benchmark's real worker without the per-call record and tracing (`workers.operate.observe`): what they cost.

Same options as `create_worker(settings)` but not wrapped by `observe.options`; `worker.observe_cost_pct` is
how much slower the real worker runs with them.
"""

from __future__ import annotations

import sys

from contract import logs
from contract.settings import Settings
from workers.runtime.settings import worker_options
from workers.runtime.supervise import SupervisedWorker


def main() -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    SupervisedWorker(**worker_options(settings)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
