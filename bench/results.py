"""bench/results.json: each benchmark writes its own section; `make bench` prints the table."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def record(section: str, values: dict[str, Any]) -> None:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[section] = values
    data["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data["machine"] = f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}"
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _cores() -> int:
    import os

    return os.cpu_count() or 0
