"""`make demo` end to end: the demo's short mode as a subprocess, exactly as `make demo` runs it (minus make).

Each run starts the real receiver and worker as processes; the tests check what the demo promises a new
user: every placed call produces its completed event, the exit status says so, and nothing is left
behind (no process of the run, no key of the run in Redis, no private redis-server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import redis

from chaos.sentinel import SentinelGroup
from contract import redisurl
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["--rate", "100", "--no-live", "--transcript-wait", "5", "--wait", "40"]


class DemoRun:
    """One finished `python -m demo` run: exit status, output, its DEMO RESULT fields, and leftovers."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        # A new session makes the demo the leader of its own process group, which its children join.
        process = subprocess.Popen([sys.executable, "-m", "demo", *args], cwd=ROOT, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            self.stdout, self.stderr = process.communicate(timeout=90)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()
        self.status = process.returncode
        self.group_left = group_alive(process.pid)
        lines = [line for line in self.stdout.splitlines() if line.startswith("DEMO RESULT ")]
        assert lines, f"no DEMO RESULT line (exit {self.status}):\n{self.stdout}\n{self.stderr}"
        self.result = dict(field.split("=", 1) for field in lines[-1].removeprefix("DEMO RESULT ").split())

    def __str__(self) -> str:
        return f"exit {self.status}\n{self.stdout[-4000:]}\n{self.stderr[-4000:]}"

    @property
    def pids(self) -> list[int]:
        return [int(p) for p in self.result["pids"].split(",") if p]


def group_alive(pgid: int) -> bool:
    """Whether any process is still in this process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_short_demo_publishes_every_call_and_leaves_nothing_behind():
    """The short demo exits 0 with every call completed, each accepted once, and no process or key left."""
    run = DemoRun(["--calls", "30", *SHORT], {**os.environ, "REDIS_URL": REDIS_URL})
    assert run.status == 0, run
    result = run.result
    assert result["status"] == "ok", run
    assert result["calls"] == result["completed"] == "30", run
    # Every call had a webhook accepted (the rest were deduplicated), but for the 10% whose webhooks were
    # never sent: those were recovered by reconciliation.
    assert int(result["accepted_calls"]) + int(result["recovered"]) == 30, run
    assert result["recovered"] == result["dropped"] != "0", run
    assert int(result["duplicate"]) > 0, run
    assert result["direction_unknown"] == "0", run  # drifted bodies included: the sandbox knows every direction
    assert int(result["transcribed"]) + int(result["unavailable"]) > 0, run
    assert result["dead_letters"] == "0", run
    assert result["redis"] == "REDIS_URL", run
    assert len(run.pids) == 2, run  # receiver and worker
    assert not any(alive(pid) for pid in run.pids), run
    assert not run.group_left, run
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert list(client.scan_iter(match=f"*{result['run']}*")) == []
    finally:
        client.close()
    assert "Every call produced its completed event" in run.stdout
    assert '"type": "wavix.call.completed"' in run.stdout  # the example event is shown
    assert not (ROOT / ".demo" / result["run"]).exists()  # the roles' logs are removed after a good run


def test_without_a_reachable_redis_the_demo_runs_its_own_and_stops_it():
    """REDIS_URL unset and nothing on the default address: a private redis-server serves the run, then is gone."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    run = DemoRun(["--calls", "10", *SHORT, "--redis-probe", "127.0.0.1:1"], env)
    assert run.status == 0, run
    result = run.result
    assert result["redis"] == "private", run
    assert result["calls"] == result["completed"] == "10", run
    assert len(run.pids) == 3, run  # receiver, worker and the private redis-server
    assert not any(alive(pid) for pid in run.pids), run
    assert not run.group_left, run
    assert not answers(int(result["redis_port"])), run


def test_demo_console_stays_open_on_the_runs_data_until_ctrl_c():
    """`--console`: after the run the console serves the run's calls at the URL it prints, and Ctrl-C ends the
    demo cleanly (exit 0, nothing left behind)."""
    import re
    import signal
    import time

    import httpx

    process = subprocess.Popen([sys.executable, "-m", "demo", "--calls", "10", "--console", *SHORT], cwd=ROOT,
                               env={**os.environ, "REDIS_URL": REDIS_URL}, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    seen: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        found = None
        while time.monotonic() < deadline and found is None:
            line = process.stdout.readline()
            seen.append(line)
            found = re.search(r"Console: (http://127\.0\.0\.1:\d+/) · token (\w+)", line)
        assert found, "".join(seen)
        page = httpx.get(found.group(1) + "calls", headers={"Authorization": f"Bearer {found.group(2)}"})
        assert page.status_code == 200 and page.text.count("/calls/") >= 10
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()
    result = [line for line in out.splitlines() if line.startswith("DEMO RESULT ")]
    assert process.returncode == 0 and result and "status=ok" in result[-1], "".join(seen) + out
    assert not group_alive(process.pid)


def test_the_demo_runs_through_redis_sentinel(tmp_path):
    """REDIS_URL=redis+sentinel://...: the demo, its receiver and its worker find the primary through the
    Sentinels, every call completes, and nothing of the run is left on the primary."""
    with SentinelGroup(tmp_path / "redis", replicas=1) as group:
        run = DemoRun(["--calls", "10", *SHORT], {**os.environ, "REDIS_URL": group.url})
        assert run.status == 0, run
        assert run.result["calls"] == run.result["completed"] == "10", run
        assert "redis+sentinel://" in run.stdout, run
        client = redisurl.sync_client(group.url)
        try:
            assert list(client.scan_iter(match=f"*{run.result['run']}*")) == []
        finally:
            client.close()
