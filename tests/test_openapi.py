"""The OpenAPI document tells the truth: its request schema is exactly what the receiver accepts, and
schemathesis, run against the served document and the served app, finds no undocumented answer, no
answer off its schema and no 5xx.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contract.errors import PayloadError
from contract.webhooks import classify
from service.openapi import WEBHOOK_BODY
from tests.conftest import REDIS_URL, TOKEN, forget
from tests.helpers.servers import free_port, running

OPERATION = "/webhooks/wavix/{token}"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    port = free_port()
    queue, prefix = f"test:queue:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}:"
    env = {"REDIS_URL": REDIS_URL, "WEBHOOK_TOKENS": TOKEN, "QUEUE_NAME": queue, "KEY_PREFIX": prefix}
    url = f"http://127.0.0.1:{port}"
    try:
        with running(["serve", "--host", "127.0.0.1", "--port", str(port)], env, f"{url}/healthz"):
            yield url
    finally:
        forget([prefix], [queue])


def accepted(body: dict[str, Any]) -> bool:
    try:
        classify(json.dumps(body).encode())
    except PayloadError:
        return False
    return True


def valid(body: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(WEBHOOK_BODY).is_valid(body)


def test_an_empty_object_is_not_a_valid_webhook_body():
    """`{}` (no call id) is invalid against the documented request schema, and the receiver refuses it."""
    assert not valid({})
    assert not accepted({})


# Python's `$` also matches before a final "\n" (ECMA 262's, which JSON Schema uses, does not): such ids
# are left to the explicit tests in test_webhook_decoding.py.
id_values = st.one_of(
    st.none(), st.just(""), st.uuids().map(str), st.from_regex(r"[A-Za-z0-9._:/\\ -]{1,12}", fullmatch=True),
    st.text(max_size=12).filter(lambda s: not s.endswith("\n")), st.integers(), st.text(min_size=129, max_size=130),
)
others = st.dictionaries(
    st.sampled_from(["disposition", "event_type", "status", "from", "direction", "x"]),
    st.one_of(st.none(), st.text(max_size=5), st.integers(), st.booleans()), max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(ids=st.dictionaries(st.sampled_from(["id", "uuid", "call_id"]), id_values, max_size=3), rest=others)
def test_the_request_schema_accepts_exactly_what_the_receiver_accepts(ids, rest):
    """For any mix of id fields (valid, null, empty, impossible, wrong type) and other fields, the body is
    valid against the documented schema exactly when the receiver accepts it."""
    body = {**rest, **ids}
    assert valid(body) == accepted(body), body


@pytest.fixture(scope="module")
def operation(base: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json")
    return schema[OPERATION]["POST"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_undocumented_answer_and_no_5xx(base, operation, mode):
    """Bodies generated from the served document (valid ones, and in negative mode invalid ones), sent
    with the real token to the served app: every answer's status, body, headers and content type are
    documented, and none is a 5xx."""
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance,
              response_headers_conformance, content_type_conformance]
    statuses: set[int] = set()

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.path_parameters = {"token": TOKEN}
        statuses.add(case.call_and_validate(base_url=base, checks=checks).status_code)

    run()
    assert statuses, "schemathesis sent nothing"
    assert statuses <= {200, 400, 415}, statuses
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses
