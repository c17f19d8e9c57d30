"""`python -m sandbox`: the same as `wavix-events simulate` (used by `sandbox.server.spawn`)."""

from __future__ import annotations

import argparse
import sys

from sandbox.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    add_arguments(parser)
    try:
        return run(parser.parse_args())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
