"""The image's HEALTHCHECK: exit 0 when one of the given health endpoints answers 200, else 1.

    python /opt/wavix-events/healthcheck.py [PORT_OR_URL ...]

A bare port means http://127.0.0.1:PORT/healthz. With no argument it tries the receiver (8000) and then a
worker (9100, the default WORKER_HEALTH_PORT), so the one image reports health whichever role it runs;
compose and Kubernetes name the exact endpoint of each role. Standard library only: slim has no curl.
"""

from __future__ import annotations

import sys
import urllib.request

DEFAULT_TARGETS = ("8000", "9100")
TIMEOUT = 3.0


def url_for(target: str) -> str:
    return f"http://127.0.0.1:{int(target)}/healthz" if target.isdigit() else target


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            return bool(answer.status == 200)
    except (OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    return 0 if any(healthy(url_for(t)) for t in (argv or DEFAULT_TARGETS)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
