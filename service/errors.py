"""The one place where failures become HTTP answers.

Every error answer is JSON: `{"error": <code>, "message": <text>}`, plus `field` (a JSON path) for a
body that cannot be used. A queue that cannot be reached answers 503 with `Retry-After`, so that the
sender tries again later: nothing was marked seen.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap
from redis.exceptions import RedisError

from contract import logs
from contract.errors import PayloadError
from contract.redisbatch import NotReplicated

log = logs.get("service")


class WebhookRejected(Exception):
    """A webhook refused before its body is read (unknown token, source not allowed, wrong type) or while it
    is read (not all of it in time)."""

    def __init__(self, status: int, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.close = close  # the connection cannot be used again (the request was not read to its end)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def _payload(_: Request[Any, Any, Any], exc: PayloadError) -> Response[Any]:
    return Response(error_body("invalid_payload", exc.problem, field=exc.path), status_code=400)


def _rejected(_: Request[Any, Any, Any], exc: WebhookRejected) -> Response[Any]:
    headers = {"Connection": "close"} if exc.close else None
    return Response(error_body(exc.code, str(exc)), status_code=exc.status, headers=headers)


def _queue_down(_: Request[Any, Any, Any], exc: RedisError) -> Response[Any]:
    if isinstance(exc, NotReplicated):  # ACK_REPLICAS: queued on the primary, not yet safe from its loss
        log.warning("queue.not_replicated", detail=str(exc))
        return Response(error_body("queue_not_replicated", "the queue could not confirm the webhook on a replica "
                                   "in time; send it again (a repeat is recognised)"),
                        status_code=503, headers={"Retry-After": "1"})
    log.error("queue.unavailable", error=type(exc).__name__, detail=str(exc))
    return Response(
        error_body("queue_unavailable", "the queue cannot be reached; nothing was accepted, try again"),
        status_code=503,
        headers={"Retry-After": "5"},
    )


_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = _CODES.get(exc.status_code, "http_error")
    message = "the body is larger than the limit" if exc.status_code == 413 else str(exc.detail)
    return Response(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def _bug(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("request.failed", exc_info=True, error=type(exc).__name__)
    return Response(error_body("internal_error", "an unexpected error; nothing was accepted"), status_code=500)


exception_handlers: ExceptionHandlersMap = {
    PayloadError: _payload,
    WebhookRejected: _rejected,
    RedisError: _queue_down,
    HTTPException: _http,
    Exception: _bug,
}
