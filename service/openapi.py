"""The OpenAPI document's description of the webhook bodies.

The handler reads the raw body itself (to keep it byte for byte and to name the failing field), so
Litestar cannot infer the request schema; it is generated here from the same msgspec Structs that decode
the bodies, so the document cannot drift from the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, Reference, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.openapi.spec.operation import Operation

from contract.webhooks import OnCallWebhook, PostCallWebhook, TranscriptionWebhook

WEBHOOK_BODIES = (PostCallWebhook, OnCallWebhook, TranscriptionWebhook)
_REF = "#/components/schemas/{name}"


def _snake(key: str) -> str:
    return {"not": "schema_not", "if": "schema_if", "else": "schema_else"}.get(
        key, re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()
    )


def _schema(node: Any) -> Any:
    """A JSON Schema dict from msgspec as Litestar's `Schema` objects."""
    if isinstance(node, list):
        return [_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return Reference(ref=node["$ref"])
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            out["type"] = [OpenAPIType(t) for t in value] if isinstance(value, list) else OpenAPIType(value)
        elif key in ("properties", "$defs"):
            out[_snake(key)] = {name: _schema(v) for name, v in value.items()}
        elif key in ("required", "enum", "default", "examples"):
            out[_snake(key)] = value
        else:
            out[_snake(key)] = _schema(value)
    return Schema(**out)


def document_webhook_bodies(openapi: OpenAPI) -> None:
    """Adds the body schemas to the generated document (Litestar rebuilds `components.schemas` from
    the types it saw, so they are added after it has built the document)."""
    _, defs = msgspec.json.schema_components(WEBHOOK_BODIES, ref_template=_REF)
    openapi.components.schemas.update({name: _schema(d) for name, d in defs.items()})


@dataclass
class WebhookOperation(Operation):
    """The receive operation, with its request body documented as one of the webhook bodies."""

    def __post_init__(self) -> None:
        refs: list[Reference | Schema] = [Reference(ref=_REF.format(name=t.__name__)) for t in WEBHOOK_BODIES]
        self.request_body = RequestBody(
            required=True,
            description="A Wavix webhook body, exactly as Wavix sends it (at most 64 KiB of JSON).",
            content={"application/json": OpenAPIMediaType(schema=Schema(one_of=refs))},
        )
