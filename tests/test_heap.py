"""The served receiver's collector settings (contract/heap.py): made by the app factory servers call, in that
process only; start-up objects frozen, young collections rarer, and cycles made afterwards still collected."""

from __future__ import annotations

import os
import subprocess
import sys

from contract.heap import YOUNG_EVERY
from tests.conftest import REDIS_URL

_PROBE = """
import gc, weakref
from service.asgi import app
app()
class Node: pass
node = Node(); node.self = node; alive = weakref.ref(node); del node
gc.collect()
print(gc.get_freeze_count(), gc.get_threshold()[0], alive() is None)
"""


def test_the_served_app_freezes_what_it_built_and_still_collects_cycles_made_later() -> None:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": "heap-token-" + "h" * 24, "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    frozen, young_every, cycle_collected = done.stdout.split()
    assert int(frozen) > 10_000, "the app's start-up objects are frozen"
    assert int(young_every) == YOUNG_EVERY
    assert cycle_collected == "True"


def test_building_an_app_in_a_test_process_changes_no_collector_setting() -> None:
    """create_app (what tests and bench call) leaves the collector alone: only the served factory settles it."""
    import gc

    from contract.settings import Settings
    from service.app import create_app

    before = (gc.get_freeze_count(), gc.get_threshold())
    create_app(Settings.from_env({"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": "heap-token-" + "h" * 24}))
    assert (gc.get_freeze_count(), gc.get_threshold()) == before
