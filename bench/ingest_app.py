"""The receiver app as benchmarked: the real app plus a baseline route in the same process.

`POST /bench/decode/{token}` reads and decodes the body exactly as the webhook does and answers the
same JSON, but neither authenticates nor touches Redis: the ratio webhook/baseline is the cost of our
work (auth, dedup + enqueue) on top of the framework's own cost of serving a request.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, post
from litestar.params import FromPath

from contract.webhooks import classify
from service import asgi


@post("/bench/decode/{token:str}", status_code=200, include_in_schema=False)
async def decode_only(request: Request[Any, Any, Any], token: FromPath[str]) -> dict[str, Any]:
    webhook = classify(await request.body())
    return {"status": "accepted", "call_id": webhook.call_id, "event": webhook.event}


def app() -> Litestar:
    application = asgi.app()
    application.register(decode_only)
    return application
