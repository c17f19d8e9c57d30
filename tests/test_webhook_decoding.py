"""What the receiver refuses and what it reads leniently: only a body that cannot be a call is refused.

Wavix never retries a webhook, so a 400 is a call lost for good. These tests pin the classification
table of contract/webhooks.py, the call-id rules, the depth limit and `facts()`, through the real app
and real Redis where the answer matters, and as pure functions where only the decoding does.
"""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from contract.jobs import PROCESS_CALL, job_deserializer, receipt_from
from contract.settings import Settings
from contract.webhooks import Kind, WebhookFacts, classify, decode_on_call, decode_post_call, facts
from tests.conftest import TOKEN, call_id
from tests.helpers import payloads

URL = f"/webhooks/wavix/{TOKEN}"
JSON = {"content-type": "application/json"}


async def queued(redis: Redis, settings: Settings) -> list[str]:
    return [m.decode() for m in await redis.zrange(settings.queue_name, 0, -1)]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_a_post_call_that_gains_an_event_type_still_starts_the_call(client, redis, settings):
    """A post-call body with an extra `event_type` is still a post-call: accepted and queued, not ignored."""
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid, event_type="post-call"))
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert await queued(redis, settings) == [settings.key_prefix + f"call:{cid}"]


async def test_a_progress_event_carrying_call_record_fields_is_recorded_not_queued(client, redis, settings):
    """An `event_type` naming a progress event wins over call-record fields (disposition, charge): the body
    is recorded with the call, queues nothing and takes no dedup mark (issue #22)."""
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid, event_type="ringing"))
    response = await client.post(URL, content=body, headers=JSON)
    assert response.json()["status"] == "ignored"
    assert await queued(redis, settings) == []
    assert await redis.exists(settings.key_prefix + f"seen:call:{cid}") == 0


async def test_a_post_call_gaining_an_unknown_event_type_still_starts_the_call(client, redis, settings):
    """An `event_type` we do not know (the sandbox's `call_status` drift) beside a disposition: the disposition
    says the call ended, so the body is still a post-call that starts work."""
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid, event_type="call_status"))
    response = await client.post(URL, content=body, headers=JSON)
    assert response.json()["status"] == "accepted"
    job = job_deserializer(await redis.get("arq:job:" + settings.key_prefix + f"call:{cid}"))
    assert job["f"] == PROCESS_CALL


async def test_a_post_call_with_null_disposition_and_a_status_is_not_a_transcription(client, redis, settings):
    """A post-call whose disposition is null and which carries `status` is a call, not a transcription webhook."""
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid, disposition=None, status="completed"))
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert await queued(redis, settings) == [settings.key_prefix + f"call:{cid}"]
    job = job_deserializer(await redis.get("arq:job:" + settings.key_prefix + f"call:{cid}"))
    assert job["f"] == PROCESS_CALL
    assert receipt_from(job["a"][0]).kind is Kind.POST_CALL


@pytest.mark.parametrize("where", ["unknown", "event_payload"])
async def test_deep_nesting_under_the_size_limit_gets_400_not_500(client, redis, settings, where):
    """A body nested thousands deep (in an unknown field or a known one) answers 400 naming `$`, never 500."""
    body = f'{{"uuid": "{call_id()}", "disposition": "answered", "{where}": {nested(5000)}}}'.encode()
    assert len(body) < 64 * 1024
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_payload", "message": response.json()["message"], "field": "$"}
    assert "deep" in response.json()["message"]
    assert await queued(redis, settings) == []


async def test_moderate_nesting_in_an_unknown_field_is_accepted(client, redis, settings):
    """Nesting up to the documented limit (64) in a field we do not read is accepted."""
    body = f'{{"uuid": "{call_id()}", "disposition": "answered", "x": {nested(60)}, "s": "[[[[{{"}}'.encode()
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"


@pytest.mark.parametrize(
    "bad",
    [
        "abc\r\nX-Injected: 1", "abc\n", "\nabc", "../../v1/balance", "a/b", "..", ".", "a..b", "a\\b",
        "ab c", "abc\t", "abc\u202e", "abc\u200b", "abc\x00", "abc\u00a0", "x" * 129, "ünïcode", "%2e%2e",
        "?x=1", "a#b", "",  # "" with no other id counts as missing
    ],
)
@pytest.mark.parametrize("shape", ["post_call", "on_call", "transcription"])
async def test_an_impossible_call_id_gets_400_naming_its_field(client, redis, settings, bad, shape):
    """Control/format/space characters, slashes, `..`, backslashes and over-long ids are refused with 400."""
    body = {
        "post_call": payloads.post_call(bad),
        "on_call": {**payloads.on_call("ignored", "completed"), "id": bad, "uuid": None},
        "transcription": payloads.transcription(bad),
    }[shape]
    response = await client.post(URL, content=payloads.encode(body), headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == ("$.id" if shape == "on_call" else "$.uuid")
    assert await queued(redis, settings) == []


@pytest.mark.parametrize(
    "good", ["5dccb6b0-f35c-488c-867b-86fb012c4415", "ABC_123", "a.b.c", "call:42", "x" * 128, "7", "a."]
)
def test_plausible_call_ids_are_accepted_whatever_their_uuid_version(good):
    """Ids are checked for shape (safe charset, no `..`, at most 128), not for being a UUID of some version."""
    assert classify(payloads.encode(payloads.post_call(good))).call_id == good


@pytest.mark.parametrize(
    ("body", "kind", "event", "starts"),
    [
        pytest.param(payloads.post_call("c1"), Kind.POST_CALL, "answered", True, id="post-call"),
        pytest.param(payloads.post_call("c1", event_type="completed"), Kind.POST_CALL, "answered", True,
                     id="post-call-with-event-type"),
        pytest.param({"uuid": "c1", "disposition": None, "status": "busy"}, Kind.POST_CALL, "", True,
                     id="null-disposition-and-status"),
        pytest.param(payloads.on_call("c1", "completed"), Kind.ON_CALL, "completed", True, id="on-call-completed"),
        pytest.param(payloads.on_call("c1", "Canceled"), Kind.ON_CALL, "canceled", True, id="on-call-canceled"),
        pytest.param(payloads.on_call("c1", "no-answer"), Kind.ON_CALL, "no-answer", True, id="on-call-no-answer"),
        pytest.param(payloads.on_call("c1", "failed"), Kind.ON_CALL, "failed", True, id="on-call-failed"),
        pytest.param(payloads.on_call("c1", "answered"), Kind.ON_CALL, "answered", False, id="on-call-answered"),
        pytest.param(payloads.on_call("c1", "teleported"), Kind.ON_CALL, "teleported", False, id="unknown-event"),
        pytest.param(payloads.on_call("c1", 17), Kind.ON_CALL, "", False, id="numeric-event-type"),
        pytest.param({"id": "c1", "event_type": "post-call"}, Kind.POST_CALL, "", True, id="event-type-post-call"),
        pytest.param({"id": "c1", "event_type": "ringing", "sip_trunk": 32882}, Kind.ON_CALL, "ringing", False,
                     id="progress-with-a-record-field"),
        pytest.param(payloads.post_call("c1", event_type="answered"), Kind.ON_CALL, "answered", False,
                     id="progress-with-a-disposition"),
        pytest.param({"id": "c1", "event_type": "teleported", "sip_trunk": 1}, Kind.ON_CALL, "teleported", False,
                     id="unknown-event-with-a-record-field"),
        pytest.param(payloads.post_call("c1", event_type="call_status"), Kind.POST_CALL, "answered", True,
                     id="unknown-event-with-a-disposition"),
        pytest.param(payloads.transcription("c1"), Kind.TRANSCRIPTION, "completed", True, id="transcription"),
        pytest.param({"uuid": "c1", "status": "FAILED", "extra": 1}, Kind.TRANSCRIPTION, "failed", True,
                     id="transcription-failed-extra-field"),
        pytest.param({"uuid": "c1", "status": "done"}, Kind.TRANSCRIPTION, "done", False,
                     id="transcription-new-status"),
        pytest.param({"uuid": "c1", "status": "completed", "from": "1"}, Kind.POST_CALL, "", True,
                     id="status-beside-a-call-field"),
        pytest.param({"uuid": "c1"}, Kind.POST_CALL, "", True, id="only-an-id"),
        pytest.param({"call_id": "c1", "surprise": [1]}, Kind.POST_CALL, "", True, id="call-id-only"),
    ],
)
def test_the_classification_table(body, kind, event, starts):
    """Each row of the documented table: which fields are present decides the kind and whether work starts."""
    webhook = classify(json.dumps(body).encode())
    assert (webhook.kind, webhook.call_id, webhook.event, webhook.starts_work) == (kind, "c1", event, starts)


# The spec's progress events, and spellings of them; they never end a call, whatever else the body holds.
PROGRESS_EVENTS = ["call_setup", "ringing", "early_media", "answered", "on_call_event", "Ringing", "early-media",
                   "EARLY MEDIA", " answered "]
# Events that say the call ended: the spec's four (FACTS.md) and spellings other Wavix material uses.
ENDED_EVENTS = ["completed", "busy", "cancelled", "rejected", "canceled", "failed", "noanswer", "no-answer",
                "no_answer", "hangup", "Completed", "BUSY"]
# Call-record fields as they drift into an on-call body (the sandbox's `sip_trunk-number` among them).
RECORD_FIELDS = [{"sip_trunk": 32882}, {"sip_trunk": "32882"}, {"answered_by": "human"}, {"duration": 0},
                 {"charge": "0.0"}, {"date": "2025-09-22T12:56:38.547Z"}, {"destination": "France"},
                 {"per_minute": "0.027"}, {"forward_fee": 0}, {"parent_uuid": "p-1"}, {"disposition": "answered"},
                 {"disposition": "answered", "duration": 6, "charge": "0.822"}]


def test_the_drifted_progress_body_of_issue_22_is_not_the_end_of_the_call():
    """`ringing` with a `sip_trunk` drifted in is an on-call progress event: recorded, no work, not a post-call."""
    webhook = classify(b'{"id": "u1", "event_type": "ringing", "sip_trunk": 32882}')
    assert (webhook.kind, webhook.call_id, webhook.event, webhook.starts_work) == (Kind.ON_CALL, "u1", "ringing",
                                                                                    False)


@pytest.mark.parametrize("extra", [{}, *RECORD_FIELDS], ids=lambda e: ",".join(e) or "plain")
@pytest.mark.parametrize("event", PROGRESS_EVENTS)
def test_an_on_call_progress_event_never_ends_the_call(event, extra):
    """A progress event is on-call and starts no work, in the bare form, the spec's form and with any
    call-record field drifted in: its event says the call goes on."""
    for body in ({"id": "u1", "event_type": event, **extra}, payloads.on_call("u1", event, **extra)):
        webhook = classify(json.dumps(body).encode())
        assert (webhook.kind, webhook.starts_work) == (Kind.ON_CALL, False), body
        assert webhook.event == event.strip().lower()


@pytest.mark.parametrize("extra", [{}, *RECORD_FIELDS], ids=lambda e: ",".join(e) or "plain")
@pytest.mark.parametrize("event", ENDED_EVENTS)
def test_an_on_call_event_that_says_the_call_ended_starts_its_work(event, extra):
    """An event that says the call ended starts work under the call's one dedup key, drifted fields or not."""
    for body in ({"id": "u1", "event_type": event, **extra}, payloads.on_call("u1", event, **extra)):
        webhook = classify(json.dumps(body).encode())
        assert webhook.starts_work, body
        assert webhook.dedup_key == "call:u1"


@pytest.mark.parametrize("event", ["teleported", "call_status", 17, True, ["ringing"], {"x": 1}, ""])
@pytest.mark.parametrize("extra", [{"sip_trunk": 32882}, {"answered_by": "human", "duration": 0}],
                         ids=lambda e: ",".join(e))
def test_an_unknown_event_with_a_drifted_record_field_is_recorded(event, extra):
    """An `event_type` we cannot read as an ended event, beside call-record fields but no disposition, is an
    on-call body whose event does not say the call ended: recorded, no work."""
    webhook = classify(json.dumps({"id": "u1", "event_type": event, **extra}).encode())
    assert (webhook.kind, webhook.starts_work) == (Kind.ON_CALL, False)


@pytest.mark.parametrize(
    ("body", "call"),
    [
        ({"id": "new", "uuid": "old", "event_type": "completed"}, "new"),
        ({"id": None, "uuid": "old", "event_type": "completed"}, "old"),
        ({"id": "", "uuid": "old", "event_type": "completed"}, "old"),
        ({"uuid": "u", "call_id": "c"}, "u"),
        ({"uuid": None, "call_id": "c"}, "c"),
    ],
)
def test_the_call_id_is_the_first_of_id_uuid_call_id_that_is_given(body, call):
    """`id`, then `uuid`, then `call_id`; a null or empty one counts as absent."""
    assert classify(json.dumps(body).encode()).call_id == call


@pytest.mark.parametrize(
    "drift",
    [
        {"duration": "6"}, {"duration": None}, {"duration": {"s": 6}}, {"charge": 0.01}, {"charge": True},
        {"disposition": 3}, {"disposition": ["answered"]}, {"from": 12212123123}, {"to": {"n": 1}},
        {"direction": 1}, {"sip_trunk": 32882}, {"answered_by": False}, {"date": 1692600216},
        {"per_minute": []}, {"forward_fee": "free"}, {"parent_uuid": 7}, {"destination": {"country": "FR"}},
        {"huge": 10**30}, {"tiny": 1e-300}, {"emoji": "\U0001f4de"},
    ],
)
async def test_a_drifted_post_call_field_never_fails_the_webhook(client, redis, settings, drift):
    """A post-call field whose type drifts degrades to unknown on its own: the call is still accepted."""
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid, **drift))
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    decode_post_call(body)  # and the worker's decoder reads it too


@pytest.mark.parametrize(
    "drift",
    [
        {"event_payload": "audio"}, {"event_payload": [1]}, {"machine_detected": "true"}, {"machine_detected": 1},
        {"machine_detected": "maybe"}, {"tag": 42}, {"event_time": 1758545798}, {"call_answered": 0},
        {"direction": None}, {"from": None}, {"call_completed": {"at": "now"}},
    ],
)
async def test_a_drifted_on_call_field_never_fails_the_webhook(client, redis, settings, drift):
    """An on-call terminal event with a drifted field is accepted; the worker's decoder reads it leniently."""
    cid = call_id()
    body = payloads.encode(payloads.on_call(cid, "completed", **drift))
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    decoded = decode_on_call(body)
    assert decoded.id == cid
    assert decoded.event_payload is None or isinstance(decoded.event_payload, dict)


def test_lenient_decoders_keep_readable_values_and_drop_the_rest():
    """Numbers given for text become text, text flags become booleans, objects given for text become None."""
    post = decode_post_call(payloads.encode(payloads.post_call("c", sip_trunk=32882, direction={"x": 1})))
    assert (post.sip_trunk, post.direction, post.duration) == ("32882", None, 6)
    on = decode_on_call(payloads.encode(payloads.on_call("c", machine_detected="yes", tag=7, event_payload="x")))
    assert (on.machine_detected, on.tag, on.event_payload, on.event_type) == (True, "7", None, "completed")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"direction": "Inbound"}, WebhookFacts(direction="inbound")),
        ({"direction": " incoming "}, WebhookFacts(direction="inbound")),
        ({"direction": "received"}, WebhookFacts(direction="inbound")),
        ({"direction": "OUTGOING"}, WebhookFacts(direction="outbound")),
        ({"direction": "placed"}, WebhookFacts(direction="outbound")),
        ({"direction": "sideways"}, WebhookFacts()),
        ({"direction": 1}, WebhookFacts()),
        ({"machine_detected": True}, WebhookFacts(machine_detected=True)),
        ({"machine_detected": "true"}, WebhookFacts(machine_detected=True)),
        ({"machine_detected": 1}, WebhookFacts(machine_detected=True)),
        ({"machine_detected": "1"}, WebhookFacts(machine_detected=True)),
        ({"machine_detected": "YES"}, WebhookFacts(machine_detected=True)),
        ({"machine_detected": False}, WebhookFacts(machine_detected=False)),
        ({"machine_detected": "false"}, WebhookFacts(machine_detected=False)),
        ({"machine_detected": 0}, WebhookFacts(machine_detected=False)),
        ({"machine_detected": "perhaps"}, WebhookFacts()),
        ({"machine_detected": None}, WebhookFacts()),
        ({"answered_by": " Machine "}, WebhookFacts(answered_by="machine")),
        ({"answered_by": ""}, WebhookFacts()),
        ({"answered_by": 3}, WebhookFacts()),
    ],
)
def test_facts_reads_direction_machine_detection_and_answered_by_leniently(body, expected):
    """`facts()` normalises the three facts a webhook can tell about a call, and unknown values become None."""
    assert facts(json.dumps({"uuid": "c", **body}).encode()) == expected


@pytest.mark.parametrize(
    "body", [b"", b"nope", b"[1]", b"null", b'"s"', b"\xff\xfe", nested(100_000).encode(), b'{"a": "\\ud800"}']
)
def test_facts_never_raises(body):
    """`facts()` is total: any bytes at all give a `WebhookFacts`, all unknown when nothing can be read."""
    assert facts(body) == WebhookFacts()


async def test_a_lone_surrogate_in_an_unknown_field_does_not_lose_the_call(client, redis, settings):
    """JSON that escapes half an emoji (a lone surrogate, as truncating encoders do) is still a call."""
    cid = call_id()
    body = b'{"uuid": "' + cid.encode() + b'", "disposition": "answered", "tag": "caf\\ud83d"}'
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
