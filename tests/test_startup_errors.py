"""Every role that cannot start says why in one line: exit 2 for configuration, 1 for something unreachable.

Each command runs as a process, as an operator would run it; no traceback for an expected failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import REDIS_URL, TOKEN, forget
from tests.helpers.servers import free_port

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1 on loopback


def wavix_events(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "-m", "wavix_events.cli", *args], env={**base, **env}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    said = result.stderr.strip()
    assert said, "the command said nothing"
    assert "\n" not in said and "Traceback" not in said, said[-2000:]
    return said


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_serve_with_a_redis_url_that_has_no_port_number_names_redis_url():
    """`REDIS_URL=redis://127.0.0.1:notaport/0 wavix-events serve`: exit 2, one line naming REDIS_URL."""
    result = wavix_events("serve", "--port", str(free_port()), REDIS_URL="redis://127.0.0.1:notaport/0",
                          WEBHOOK_TOKENS=TOKEN)
    assert result.returncode == 2
    assert "REDIS_URL" in one_line(result)


def test_serve_on_a_port_in_use_says_it_cannot_listen(taken_port):
    """A receiver whose port is taken exits 1 with one line naming the address."""
    result = wavix_events("serve", "--host", "127.0.0.1", "--port", str(taken_port), WEBHOOK_TOKENS=TOKEN)
    assert result.returncode == 1
    line = one_line(result)
    assert f"127.0.0.1:{taken_port}" in line and "in use" in line


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_with_an_impossible_port_is_a_configuration_error(port):
    """`--port 70000` (or not a number) is refused before anything starts: exit 2, one line."""
    result = wavix_events("serve", "--port", port, WEBHOOK_TOKENS=TOKEN)
    assert result.returncode == 2
    assert "--port" in one_line(result)


def test_worker_with_redis_unreachable_says_so_in_one_line():
    """`wavix-events worker` with nothing at REDIS_URL: exit 1, one line naming Redis and the address."""
    result = wavix_events("worker", REDIS_URL=UNREACHABLE_REDIS, WAVIX_API_KEY="k", WORKER_HEALTH_PORT="0")
    assert result.returncode == 1
    line = one_line(result)
    assert "Redis" in line and "127.0.0.1:1" in line


def test_worker_whose_health_port_is_taken_says_so_in_one_line_and_exits_1(taken_port):
    """A worker whose WORKER_HEALTH_PORT is taken (9100 is also node_exporter's default) would run without
    `/healthz`: it exits 1 with one line naming the port and the way out, before it touches Redis."""
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        result = wavix_events("worker", "--burst", REDIS_URL=REDIS_URL, KEY_PREFIX=prefix, WAVIX_API_KEY="k",
                              RECONCILE_INTERVAL="0", WORKER_HEALTH_PORT=str(taken_port))
    finally:
        forget([prefix])
    assert result.returncode == 1, result.stderr[-2000:]
    line = one_line(result)
    assert f"WORKER_HEALTH_PORT {taken_port}" in line and "in use" in line and "0 turns it off" in line


def test_worker_without_an_api_key_is_a_configuration_error():
    """A worker without WAVIX_API_KEY: exit 2, one line naming it."""
    result = wavix_events("worker", REDIS_URL=UNREACHABLE_REDIS, WORKER_HEALTH_PORT="0")
    assert result.returncode == 2
    assert "WAVIX_API_KEY" in one_line(result)


def test_dlq_with_redis_unreachable_says_so_in_one_line():
    """`wavix-events dlq list` with nothing at REDIS_URL: exit 1, one line naming Redis."""
    result = wavix_events("dlq", "list", REDIS_URL=UNREACHABLE_REDIS)
    assert result.returncode == 1
    assert "Redis" in one_line(result)


def test_simulate_on_a_port_in_use_says_it_cannot_listen(taken_port):
    """The sandbox whose port is taken exits 1 with one line (not a traceback and status 0)."""
    result = wavix_events("simulate", "--port", str(taken_port))
    assert result.returncode == 1
    assert str(taken_port) in one_line(result)


def test_an_unknown_option_is_one_line_and_exit_2():
    """A mistyped option: exit 2 and one line that names it."""
    result = wavix_events("worker", "--bursty")
    assert result.returncode == 2
    assert "--bursty" in one_line(result)
