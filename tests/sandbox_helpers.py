"""Helpers of the sandbox tests: the official spec as JSON Schema, and a loopback webhook receiver.

The spec is the copy vendored in the repository (`sandbox/spec/wavix-api.yaml`, MIT, Wavix Inc).
`check(instance, path, method, status)` validates a body against the schema the spec gives for that
operation's response (following `$ref`s into `components`), JSON Schema 2020-12 as OpenAPI 3.1 says.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sandbox.api import Receive, Scope, Send, read_body, respond
from sandbox.server import Server

SPEC_PATH = Path(__file__).resolve().parents[1] / "sandbox/spec/wavix-api.yaml"
SPEC_URI = "urn:wavix-api"

formats = FormatChecker()


@formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 date-time (jsonschema checks it only with an extra package; this is enough here)."""
    if not isinstance(value, str):
        return True  # formats constrain strings only; the type is checked elsewhere
    if "T" not in value:
        return False
    return datetime.fromisoformat(value).tzinfo is not None


@functools.cache
def spec() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open() as f:
        loaded: dict[str, Any] = yaml.load(f, Loader=loader)
    return loaded


@functools.cache
def _registry() -> Registry:  # type: ignore[type-arg]
    return Registry().with_resource(SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))


def _absolute(schema: Any) -> Any:
    """The schema with its local `#/...` refs pointing into the spec document."""
    if isinstance(schema, dict):
        return {k: (SPEC_URI + v if k == "$ref" and v.startswith("#") else _absolute(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_absolute(v) for v in schema]
    return schema


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON schema the spec gives for `status` of `method path`."""
    response = _resolve(spec()["paths"][path][method]["responses"][str(status)])
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def check(instance: Any, schema: dict[str, Any]) -> None:
    """Raises `jsonschema.ValidationError` unless `instance` (bytes are decoded) is valid."""
    if isinstance(instance, bytes | str):
        instance = msgspec.json.decode(instance)
    validator = Draft202012Validator(_absolute(schema), registry=_registry(), format_checker=formats)
    validator.validate(instance)


async def raw_get(base_url: str, path: str, key: str) -> int:
    """One GET on its own connection, without httpx (whose pool is slow with hundreds of connections)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {key}\r\n"
                     "connection: close\r\n\r\n".encode())
        answer = await reader.read()
        return int(answer[9:12])
    finally:
        writer.close()


class Receiver:
    """A webhook target on loopback: keeps every body, answers 200 first and 409 for a repeated body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.content_types: list[bytes] = []
        self.methods: list[str] = []
        self.on_body: Any = None  # optional `async (bytes) -> None`, awaited before answering

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if self.on_body is not None:
            await self.on_body(body)
        status = 409 if body in self.bodies else 200
        self.bodies.append(body)
        self.methods.append(scope["method"])
        self.content_types.append(dict(scope["headers"]).get(b"content-type", b""))
        await respond(send, status, b"{}")


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    """Serves `receiver` on a free loopback port; yields its webhook URL."""
    server = Server(receiver)
    url = await server.start()
    try:
        yield f"{url}/webhooks/wavix/test-token"
    finally:
        await server.close()
