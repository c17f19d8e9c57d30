"""`wavix-events serve` as a process on its default server (uvicorn): the allowlist, trusted proxies, stopping."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REDIS_URL, TOKEN, call_id, forget
from tests.helpers import payloads
from tests.helpers.servers import free_port, running

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def serve() -> Iterator[object]:
    """Starts a receiver with the given allowlist and proxy settings; yields its base URL."""
    started: list[object] = []
    names: list[str] = []

    def start(allowed: str, proxies: str = "") -> str:
        port = free_port()
        names.extend((f"test:queue:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}:"))
        env = {
            "REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "WEBHOOK_ALLOWED_IPS": allowed,
            "WEBHOOK_TRUSTED_PROXIES": proxies, "QUEUE_NAME": names[-2], "KEY_PREFIX": names[-1],
        }
        base = f"http://127.0.0.1:{port}"
        context = running(["serve", "--host", "127.0.0.1", "--port", str(port)], env, f"{base}/healthz")
        context.__enter__()
        started.append(context)
        return base

    yield start
    for context in started:
        context.__exit__(None, None, None)  # type: ignore[attr-defined]
    forget(names)


def post(base: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = payloads.encode(payloads.post_call(call_id()))
    return httpx.post(f"{base}/webhooks/wavix/{TOKEN}", content=body, headers={**JSON, **(headers or {})})


def test_the_served_app_accepts_a_webhook_and_is_ready(serve):
    """The console script serves the app: /readyz answers 200 and a webhook is accepted."""
    base = serve("")
    assert httpx.get(f"{base}/readyz").status_code == 200
    response = post(base)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"


def test_sources_outside_the_allowlist_get_403(serve):
    """With WEBHOOK_ALLOWED_IPS set to Wavix's address, a loopback sender is refused with 403."""
    base = serve("62.212.73.112/32")
    response = post(base)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_an_allowed_source_is_accepted(serve):
    """A sender inside an allowed range is accepted."""
    base = serve("127.0.0.0/8,62.212.73.112")
    assert post(base).status_code == 200


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(serve):
    """Behind a trusted proxy the rightmost untrusted X-Forwarded-For entry is the sender; else it is ignored."""
    trusted = serve("62.212.73.112/32", proxies="127.0.0.1/32")
    assert post(trusted, {"x-forwarded-for": "62.212.73.112"}).status_code == 200
    assert post(trusted, {"x-forwarded-for": "62.212.73.112, 10.9.9.9"}).status_code == 403
    assert post(trusted, {"x-forwarded-for": "1.2.3.4"}).status_code == 403
    untrusted = serve("62.212.73.112/32")
    assert post(untrusted, {"x-forwarded-for": "62.212.73.112"}).status_code == 403


def test_the_served_process_logs_structured_lines_without_the_token(serve_logged):
    """The server process itself logs (JSON lines with the call id), and the URL's token never appears."""
    base, read_log = serve_logged
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid))
    assert httpx.post(f"{base}/webhooks/wavix/{TOKEN}", content=body, headers=JSON).status_code == 200
    text = read_log()
    assert f'"call_id":"{cid}"' in text
    assert '"event":"webhook.accepted"' in text
    assert TOKEN not in text


@pytest.fixture
def serve_logged(tmp_path) -> Iterator[tuple[str, object]]:
    port = free_port()
    log_file = tmp_path / "receiver.log"
    queue, prefix = f"test:queue:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}:"
    env = {"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue, "KEY_PREFIX": prefix}
    base = f"http://127.0.0.1:{port}"
    with running(["serve", "--host", "127.0.0.1", "--port", str(port)], env, f"{base}/healthz", stderr=log_file):
        yield base, lambda: log_file.read_text()
    forget([queue, prefix])


@pytest.mark.parametrize("workers", [1, 2])
def test_the_served_receiver_stops_on_sigterm_with_status_0(workers):
    """With one server process or two: webhooks are accepted, no `server` header names the server, and
    SIGTERM ends the command with status 0 once it has shut down (uvicorn re-raises the signal otherwise)."""
    port = free_port()
    queue, prefix = f"test:queue:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}:"
    env = {"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue, "KEY_PREFIX": prefix}
    base = f"http://127.0.0.1:{port}"
    try:
        with running(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)], env,
                     f"{base}/healthz") as process:
            responses = [post(base) for _ in range(4)]
        assert [r.status_code for r in responses] == [200] * 4
        assert not any("server" in r.headers for r in responses)
        assert process.returncode == 0
    finally:
        forget([queue, prefix])
