"""Every answer of the sandbox validates against Wavix's official OpenAPI 3.1 spec (sandbox/spec/).

The schemas are taken from the spec's own operations (`paths` -> response -> schema, `$ref`s followed
into `components`) and checked with JSON Schema 2020-12, formats included. The older path family
(`/v1/cdr/...`) is not in the spec; it answers the same bodies as the current one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jsonschema
import pytest

from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import serve
from sandbox.state import Sandbox
from sandbox.webhooks import Variant, on_call_body, on_call_events, post_call_body
from tests.sandbox_helpers import SPEC_PATH, check, component, response_schema

KEY = "wx_spec_key_000111222333"


@pytest.fixture
async def run() -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    sandbox = Sandbox(SandboxConfig(seed=11, api_key=KEY, start="2026-07-01T09:00:00Z"))
    sandbox.place(120)
    async with serve(sandbox) as url, httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield sandbox, client


def test_the_spec_is_vendored_in_the_repository() -> None:
    """The spec is read from the repository's own copy, so a clone with nothing beside it can test."""
    root = Path(__file__).resolve().parents[1]
    assert SPEC_PATH.is_file() and SPEC_PATH.is_relative_to(root), SPEC_PATH
    assert (SPEC_PATH.parent / "LICENSE").read_text().startswith("MIT License")
    assert response_schema("/v1/cdrs/{call_id}", "get", 200)


def test_a_wrong_body_is_caught() -> None:
    """The checker itself rejects what the spec forbids (else every test below would pass vacuously)."""
    schema = response_schema("/v1/cdrs/{call_id}", "get", 200)
    with pytest.raises(jsonschema.ValidationError):
        check({"call_id": "x"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        check({"date": "yesterday", "from": "1", "to": "2", "disposition": "answered", "duration": 1,
               "destination": "x", "per_minute": "0.1", "charge": "0.1", "uuid": "u", "call_id": "u"}, schema)


async def test_every_cdr_validates_with_and_without_transcription(run) -> None:
    """`GET /v1/cdrs/{id}` of every kind of call, plain and with `show_transcription=true`, is a `CDRResponse`."""
    sandbox, client = run
    schema = response_schema("/v1/cdrs/{call_id}", "get", 200)
    for call in sandbox.calls():
        for params in ({}, {"show_transcription": "true"}):
            response = await client.get(f"/v1/cdrs/{call.call_id}", params=params)
            assert response.status_code == 200
            check(response.content, schema)
            old = await client.get(f"/v1/cdr/{call.call_id}", params=params)
            check(old.content, schema)


async def test_every_transcript_validates_completed_and_failed(run) -> None:
    """Every transcript the sandbox serves, completed or failed, is a `CDRTranscriptionResponse`."""
    sandbox, client = run
    schema = response_schema("/v1/cdrs/{call_id}/transcription", "get", 200)
    statuses = set()
    for call in (c for c in sandbox.calls() if c.transcript is not None):
        response = await client.get(f"/v1/cdrs/{call.call_id}/transcription")
        check(response.content, schema)
        check((await client.get(f"/v1/cdr/{call.call_id}/transcription")).content, schema)
        statuses.add(response.json()["status"])
    assert statuses == {"completed", "failed"}


async def test_list_pages_validate(run) -> None:
    """Pages of `GET /v1/cdrs` for both types, with and without a disposition filter, are `CDRListResponse`s."""
    _, client = run
    schema = response_schema("/v1/cdrs", "get", 200)
    for kind in ("placed", "received"):
        for extra in ({}, {"disposition": "busy"}, {"page": 3, "per_page": 10}):
            params = {"from": "2026-07-01", "to": "2026-07-01", "type": kind, **extra}
            response = await client.get("/v1/cdrs", params=params)
            assert response.status_code == 200
            check(response.content, schema)


async def test_error_answers_validate(run) -> None:
    """401, 404, 400 and 403 bodies match the spec's error responses for the operations that give them."""
    sandbox, client = run
    call = next(c for c in sandbox.calls() if c.transcript is not None)
    unauthorized = await client.get(f"/v1/cdrs/{call.call_id}", headers={"Authorization": "Bearer no"})
    check(unauthorized.content, response_schema("/v1/recordings/{call_id}", "get", 401))
    check(unauthorized.content, component("UnauthorizedErrorResponse"))
    missing = await client.get("/v1/cdrs/unknown")
    check(missing.content, response_schema("/v1/cdrs/{call_id}", "get", 404))
    bad = await client.get("/v1/cdrs", params={"from": "2026-07-01"})
    assert bad.status_code == 400
    check(bad.content, response_schema("/v1/cdrs", "get", 400))
    sandbox.set_faults(Faults(forbidden_transcript=1.0))
    forbidden = await client.get(f"/v1/cdrs/{call.call_id}/transcription")
    assert forbidden.status_code == 403
    check(forbidden.content, response_schema("/v1/cdrs/{call_id}/transcription", "get", 403))


def test_spec_variant_webhooks_validate(run) -> None:
    """The `spec` variant's post-call bodies are `CallStatusWebhook`s and its on-call bodies are `Call`s."""
    sandbox, _ = run
    for call in sandbox.calls()[:60]:
        check(post_call_body(call, Variant.SPEC), component("CallStatusWebhook"))
        for event in on_call_events(call):
            check(on_call_body(call, event, Variant.SPEC), component("Call"))


def test_older_variants_differ_from_the_spec_on_purpose(run) -> None:
    """The older variants are what FACTS.md says Wavix sent before; the current spec rejects them."""
    sandbox, _ = run
    call = sandbox.calls()[0]
    with pytest.raises(jsonschema.ValidationError):
        check(post_call_body(call, Variant.CDR), component("CallStatusWebhook"))
    with pytest.raises(jsonschema.ValidationError):
        check(post_call_body(call, Variant.NUMERIC), component("CallStatusWebhook"))
    with pytest.raises(jsonschema.ValidationError):
        check(on_call_body(call, "call_setup", Variant.UUID), component("Call"))


async def test_null_transcripts_have_the_nulls_the_spec_forbids() -> None:
    """The spec allows no null turn `text`/`s`/`e`, `transcript` or `turns`: the opt-in nulls shape has them all."""
    sandbox = Sandbox(SandboxConfig(seed=11, api_key=KEY, start="2026-07-01T09:00:00Z",
                                    transcript_nulls_share=1.0, transcript_failed_share=0.0))
    calls = [c for c in sandbox.place(150) if c.transcript is not None]
    schema = response_schema("/v1/cdrs/{call_id}/transcription", "get", 200)
    seen: set[str] = set()
    async with serve(sandbox) as url, httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        for call in calls:
            body = (await client.get(f"/v1/cdrs/{call.call_id}/transcription")).json()
            with pytest.raises(jsonschema.ValidationError):
                check(body, schema)
            seen |= {name for name in ("transcript", "turns") if body[name] is None}
            seen |= {f"turn.{k}" for turn in body["turns"] or () for k, v in turn.items() if v is None}
            assert body["call_uuid"] == call.call_id and body["status"] == "completed"
    assert seen == {"transcript", "turns", "turn.text", "turn.s", "turn.e"}


def test_spec_has_no_nulls_in_transcript_turns() -> None:
    """Pins what the spec says today: `TranscriptTurn` fields and `transcript`/`turns` are not nullable."""
    turn = {"type": "14155550123", "s": 0, "e": 10, "text": "hi"}
    check(turn, component("TranscriptTurn"))
    for name in ("s", "e", "text"):
        with pytest.raises(jsonschema.ValidationError):
            check({**turn, name: None}, component("TranscriptTurn"))
