"""The receiver's `receive` span: ASGI middleware around every HTTP request, a pass-through when tracing is off.

The span is named by the route, never by the path: the path holds the webhook's secret token. The
enqueue span and the `traceparent` handed to the job live in service/enqueue.py (contract/tracing.py).
"""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from contract import tracing

WEBHOOK_ROUTE = "/webhooks/wavix/{token}"


def traced(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if not tracing.enabled() or scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method: str = scope.get("method", "")
        route = WEBHOOK_ROUTE if scope["path"].startswith("/webhooks/") else scope["path"]
        with tracing.span(f"receive {method} {route}", **{"http.request.method": method, "http.route": route}) as span:

            async def send_and_note(message: Message) -> None:
                if message["type"] == "http.response.start" and span is not None:
                    status: Any = message["status"]
                    span.set_attribute("http.response.status_code", status)
                await send(message)

            await app(scope, receive, send_and_note)

    return middleware
