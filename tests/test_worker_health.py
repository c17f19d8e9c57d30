"""Each worker process answers its liveness probe and serves its metrics on a small port of its own."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.servers import free_port
from workers.operate.metrics import WorkerMetrics
from workers.runtime import health


async def test_the_health_port_serves_liveness_and_metrics_with_values():
    """/healthz answers 200 from the worker's own loop; /metrics carries the counts recorded so far."""
    metrics = WorkerMetrics()
    metrics.on_response("cdr", 200, 0.012)
    metrics.on_response("cdr", 429, 0.003)
    port = free_port()
    server = await health.start(health.listen(port, host="127.0.0.1"),
                                {"/healthz": lambda: (200, "text/plain", b"ok\n"), "/metrics": metrics.page})
    assert server is not None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            text = (await client.get("/metrics")).text
            assert 'wavix_api_requests_total{endpoint="cdr",status="429"} 1.0' in text
            assert (await client.get("/nope")).status_code == 404
    finally:
        server.close()


def test_a_port_in_use_is_an_error_naming_it_and_0_serves_nothing():
    """A taken health port is an OSError naming WORKER_HEALTH_PORT and the port (the CLI's exit 1), never a
    worker running on without its probe; port 0 binds nothing."""
    port = free_port()
    first = health.listen(port, host="127.0.0.1")
    assert first is not None
    try:
        with pytest.raises(OSError, match=f"WORKER_HEALTH_PORT {port} .*in use"):
            health.listen(port, host="127.0.0.1")
    finally:
        first.close()
    assert health.listen(0) is None
