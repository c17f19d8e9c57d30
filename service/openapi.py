"""The OpenAPI description of the receive operation: what it really accepts and every answer it really gives.

The handler reads the raw body itself (to keep it byte for byte and to name the failing field), so
Litestar can infer neither the request schema nor the answers; they are written here, from the same
constants the code uses (`CALL_ID_PATTERN`, `MAX_CALL_ID`, the id fields in their order), so the
document cannot drift from contract/webhooks.py. The request schema is what is accepted: any JSON object
whose first given id field (`id`, then `uuid`, then `call_id`; null or "" counts as not given) is a
plausible call id. It cannot say "nested at most 64 deep" (JSON Schema has no such keyword); the 400
answer documents it. tests/test_openapi.py runs schemathesis against the served document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import OpenAPIHeader, OpenAPIMediaType, OpenAPIResponse, Reference, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.openapi.spec.operation import Operation

from contract.webhooks import CALL_ID_PATTERN, ID_FIELDS, MAX_CALL_ID, MAX_DEPTH
from service.httphead import HEAD_TIMEOUT_S

_CALL_ID = {"type": "string", "minLength": 1, "maxLength": MAX_CALL_ID, "pattern": CALL_ID_PATTERN}
_NOT_GIVEN = {"enum": [None, ""]}


def _first_id_is(index: int) -> dict[str, Any]:
    earlier = {name: _NOT_GIVEN for name in ID_FIELDS[:index]}
    return {"required": [ID_FIELDS[index]], "properties": {**earlier, ID_FIELDS[index]: _CALL_ID}}


WEBHOOK_BODY: dict[str, Any] = {
    "type": "object",
    "description": (
        "Any Wavix webhook: post-call (`CallStatusWebhook`, or the older whole CDR), on-call (`Call`) or "
        "transcription completed. Every field but the call id is read leniently and unknown fields are kept; "
        "contract/webhooks.py documents how the kind is told."
    ),
    "anyOf": [_first_id_is(i) for i in range(len(ID_FIELDS))],
    "examples": [
        {"uuid": "99df5ffd-962a-410f-bcce-d08f1f7f328c", "direction": "outbound", "disposition": "answered",
         "duration": 6, "charge": "0.822", "date": "2023-08-21T06:43:36.000Z", "from": "14302287001",
         "to": "33170363950", "destination": "France", "per_minute": "0.027"},
        {"id": "5dccb6b0-f35c-488c-867b-86fb012c4415", "event_type": "completed", "direction": "inbound"},
        {"uuid": "99df5ffd-962a-410f-bcce-d08f1f7f328c", "status": "completed"},
    ],
}
ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["status", "call_id", "event"],
    "properties": {
        "status": {"enum": ["accepted", "duplicate", "ignored"], "description": (
            "accepted: the call's job is queued; duplicate: the same work was already queued; ignored: a "
            "progress event, recorded for the call's job but starting none")},
        "call_id": _CALL_ID,
        "event": {"type": "string", "description": "disposition, event_type or status, lower case; may be empty"},
    },
}


def _error(codes: list[str], *, field: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {"error": {"enum": codes}, "message": {"type": "string"}}
    if field:
        properties["field"] = {"type": "string", "description": "the JSON path that makes the body no call"}
    return {"type": "object", "required": ["error", "message"], "properties": properties}


_ANSWERS: dict[str, tuple[str, dict[str, Any]]] = {
    "200": ("Accepted, a duplicate, or a progress event recorded: nothing to resend.", ANSWER),
    "400": (f"The body cannot be a call: not a JSON object, nested deeper than {MAX_DEPTH}, no or an impossible "
            "call id (`field` names it); or its HTTP framing is broken.",
            _error(["invalid_payload", "bad_request"], field=True)),
    "403": ("The source address is not allowed to send webhooks.", _error(["forbidden"])),
    "404": ("No such webhook endpoint (an unknown token).", _error(["not_found"])),
    "408": (f"The body did not arrive in time ({HEAD_TIMEOUT_S:.0f} s after the head, as long as the head may "
            "take): nothing was accepted; the connection is closed.", _error(["request_timeout"])),
    "413": ("The body is larger than the limit (64 KiB by default).", _error(["body_too_large"])),
    "415": ("The body is declared as something other than JSON.", _error(["unsupported_media_type"])),
    "503": ("The queue cannot be reached: nothing was accepted, send again after `Retry-After`.",
            _error(["queue_unavailable"])),
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _schema(node: Any) -> Any:
    """A JSON Schema dict as Litestar's `Schema` objects."""
    if isinstance(node, list):
        return [_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return Reference(ref=node["$ref"])
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            out["type"] = OpenAPIType(value)
        elif key == "properties":
            out["properties"] = {name: _schema(v) for name, v in value.items()}
        elif key in ("required", "enum", "examples"):
            out[key] = value
        else:
            out[_snake(key)] = _schema(value)
    return Schema(**out)


def _response(description: str, schema: dict[str, Any], status: str) -> OpenAPIResponse:
    headers: dict[str, OpenAPIHeader | Reference] | None = None
    if status == "503":
        headers = {"Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER), required=True, description="seconds to wait")}
    content = {"application/json": OpenAPIMediaType(schema=_schema(schema))}
    return OpenAPIResponse(description=description, content=content, headers=headers)


@dataclass
class WebhookOperation(Operation):
    """The receive operation, with its request body and every answer written out (Litestar sees neither)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="A Wavix webhook body, exactly as Wavix sends it (at most 64 KiB of JSON).",
            content={"application/json": OpenAPIMediaType(schema=_schema(WEBHOOK_BODY))},
        )
        self.responses = {code: _response(text, schema, code) for code, (text, schema) in _ANSWERS.items()}
