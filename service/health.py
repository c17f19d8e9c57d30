"""Health: `/healthz` says the process is alive, `/readyz` that it can accept work (Redis answers).

`/readyz` asks the client the webhooks use (`state.pipe`, the enqueuer's pipelined connection): a probe on
another client could stay green while every webhook waits or fails. `state.redis` answers only when the
app has not put its pipelined client on the state.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.errors import error_body


@get("/healthz", tags=["operations"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["operations"], summary="Redis answers: webhooks can be accepted")
async def readyz(state: State) -> Response[Any]:
    client = state.get("pipe") or state.redis
    try:
        await client.ping()
    except Exception as e:
        return Response(error_body("not_ready", f"redis does not answer ({type(e).__name__})"), status_code=503)
    return Response({"status": "ready"})


@get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    try:
        await state.metrics.sample_queue(state.redis, state.settings.queue_name)
    except Exception:  # Redis down: the other numbers still matter, and readyz says what is wrong
        state.metrics.queue_depth.set(float("nan"))
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
