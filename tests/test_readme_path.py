"""The README's manual path, run as pasted: the `.env` snippet, then each role's line in a terminal of its own.

Each line of the README's roles block runs as `bash -c LINE` in an empty folder (with the project's `.venv`
linked in, as a clone has it after `make install`), so what a new user pastes is what runs: the Slack
stand-in, the receiver, a worker, the simulator as Wavix, the console, `dlq list`. Only Redis is the test's
own (REDIS_URL, a private `redis-server`), so the run shares nothing with the machine's Redis; the README's
ports (8000, 8099, 8100, 8300) must be free.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from chaos.redis import PrivateRedis
from tests.test_readme import ROOT, blocks

CALLS = 300
PORTS = {"receiver": 8000, "slack": 8099, "wavix": 8100, "console": 8300}
WAIT_S = 120.0  # a bound on the run, not the measure


def taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False


def until(condition: object, what: str, logs: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs.glob("*.log"))
            raise AssertionError(f"{what} within {WAIT_S} s\n{tails}")
        time.sleep(0.2)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """An empty folder with the project's .venv (the README's `export PATH` line names `$PWD/.venv/bin`), and
    the environment of a terminal in it: that PATH, and REDIS_URL of a private Redis."""
    busy = [name for name, port in PORTS.items() if taken(port)]
    assert not busy, f"the README's ports are in use: {busy}"
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    with PrivateRedis(tmp_path / "redis") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WAVIX_", "SLACK_", "CONSOLE_", "WEBHOOK"))}
        env |= {"PATH": f"{tmp_path}/.venv/bin:{env['PATH']}", "REDIS_URL": server.url}
        yield tmp_path, env


def test_the_manual_path_pasted_line_by_line_works(folder: tuple[Path, dict[str, str]]) -> None:
    """Every call the simulator places ends in a completed event, the Slack stand-in receives the alerts, the
    console takes the token the console line shows, and `dlq list` answers."""
    path, env = folder
    env_snippet = next(b for b in blocks() if "cat > .env" in b)
    roles = next(b for b in blocks() if "python -m sandbox.slack" in b).strip().splitlines()
    subprocess.run(["bash", "-c", env_snippet], cwd=path, env=env, check=True, timeout=30)
    logs = path / "logs"
    logs.mkdir()
    started: list[subprocess.Popen[bytes]] = []
    try:
        for i, line in enumerate(roles):
            if "dlq list" in line:
                continue
            with (logs / f"{i}.log").open("wb") as out:
                started.append(subprocess.Popen(["bash", "-c", line], cwd=path, env=env, stdout=out,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True))
            if "sandbox.slack" in line:
                until(lambda: taken(PORTS["slack"]), "the Slack stand-in listens", logs)
            if "serve" in line:
                until(lambda: answers("http://127.0.0.1:8000/healthz"), "the receiver answers", logs)
        store = redis.Redis.from_url(env["REDIS_URL"])
        until(lambda: _completed(store) >= CALLS, f"{CALLS} completed events", logs)
        assert _completed(store) == CALLS
        store.close()
        slack_out = next(p for p in logs.glob("*.log") if p.name == f"{_index(roles, 'sandbox.slack')}.log")
        until(lambda: "--- Slack" in slack_out.read_text(), "an alert at the Slack stand-in", logs)
        console_out = logs / f"{_index(roles, 'wavix-events console')}.log"
        until(lambda: answers("http://127.0.0.1:8300/login"), "the console answers", logs)
        token = console_out.read_text().split("log in with ", 1)[1].split()[0]
        basic = base64.b64encode(f"operator:{token}".encode()).decode()
        assert httpx.get("http://127.0.0.1:8300/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
        dlq = next(line for line in roles if "dlq list" in line)
        listed = subprocess.run(["bash", "-c", dlq], cwd=path, env=env, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert "dead letter(s)" in listed.stdout
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _completed(store: redis.Redis) -> int:
    entries = store.xrange("wavix:events")
    return len({fields[b"call_id"] for _, fields in entries if fields[b"type"] == b"wavix.call.completed"})


def _index(lines: list[str], needle: str) -> int:
    return next(i for i, line in enumerate(lines) if needle in line)
