"""SIGHUP re-reads the accounts file in a running receiver process: a new account's token is taken at once,
a bad file is refused (the accounts in use are kept), and the receiver never stops."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from sandbox.bodies import Variant, post_call_body
from sandbox.calls import generate_call
from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL, forget
from tests.helpers.servers import free_port, running

ALPHA, BETA = "alpha-token-" + "a" * 24, "beta-token-" + "b" * 24
ONE = "accounts:\n  - name: alpha\n    api_key_env: S_KEY\n    token_env: S_ALPHA\n"
TWO = ONE + "  - name: beta\n    api_key_env: S_KEY\n    token_env: S_BETA\n"


def _until(check: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_sighup_reloads_the_accounts_file_in_the_receiver(tmp_path: Path) -> None:
    """beta's token is refused (404) until the file names beta and the receiver gets SIGHUP; a file broken
    afterwards is refused on the next SIGHUP, and both accounts' webhooks are still taken."""
    accounts, log = tmp_path / "accounts.yaml", tmp_path / "receiver.log"
    accounts.write_text(ONE)
    run, port = uuid.uuid4().hex, free_port()
    prefix, queue = f"test:{run}:", f"test:queue:{run}"
    env = {"REDIS_URL": REDIS_URL, "KEY_PREFIX": prefix, "QUEUE_NAME": queue, "ACCOUNTS_FILE": str(accounts),
           "S_KEY": "k" * 20, "S_ALPHA": ALPHA, "S_BETA": BETA, "LOG_LEVEL": "INFO"}
    base = f"http://127.0.0.1:{port}"
    calls = [generate_call(SandboxConfig(seed=9), i) for i in range(3)]

    def post(token: str, n: int) -> int:
        body = post_call_body(calls[n], Variant.SPEC)
        return httpx.post(f"{base}/webhooks/wavix/{token}", content=body,
                          headers={"content-type": "application/json"}, timeout=5.0).status_code

    try:
        with running(["serve", "--host", "127.0.0.1", "--port", str(port)], env, f"{base}/healthz",
                     stderr=log) as receiver:
            assert post(BETA, 0) == 404 and post(ALPHA, 0) == 200
            accounts.write_text(TWO)
            receiver.send_signal(signal.SIGHUP)
            assert _until(lambda: post(BETA, 1) == 200), log.read_text()[-2000:]
            accounts.write_text(TWO.replace("token_env: S_BETA", "tokn_env: S_BETA"))
            receiver.send_signal(signal.SIGHUP)
            assert _until(lambda: "accounts.reload_refused" in log.read_text())
            assert "accounts.yaml:7: account \\\"beta\\\": unknown field" in log.read_text()
            assert post(BETA, 2) == 200 and receiver.poll() is None
    finally:
        forget([prefix, queue], [queue])
