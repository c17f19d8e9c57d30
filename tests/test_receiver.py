"""The webhook receiver against real Redis: every body variant, dedup, bad input, Redis down, auth."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import msgspec
import pytest
from arq.constants import job_key_prefix, result_key_prefix
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from contract.jobs import FETCH_TRANSCRIPT, PROCESS_CALL, Receipt, job_deserializer, receipt_from
from contract.settings import Settings
from contract.webhooks import WEBHOOKS_KEPT, Kind, facts, webhooks_key
from service.app import create_app
from tests.conftest import TOKEN, call_id
from tests.helpers import payloads

URL = f"/webhooks/wavix/{TOKEN}"
JSON = {"content-type": "application/json"}


async def queued(redis: Redis, settings: Settings) -> list[str]:
    return [m.decode() for m in await redis.zrange(settings.queue_name, 0, -1)]


async def job_record(redis: Redis, job_id: str) -> dict:
    raw = await redis.get(job_key_prefix + job_id)
    assert raw is not None, f"no job {job_id}"
    return job_deserializer(raw)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda cid: payloads.post_call(cid), id="post-call"),
        pytest.param(payloads.post_call_whole_cdr, id="post-call-whole-cdr"),
        pytest.param(payloads.post_call_old_docs, id="post-call-old-docs-numbers-uppercase"),
        pytest.param(lambda cid: payloads.on_call(cid, "completed"), id="on-call-completed"),
        pytest.param(lambda cid: payloads.on_call(cid, "completed", legacy=True), id="on-call-legacy-uuid"),
        pytest.param(lambda cid: {**payloads.on_call(cid, "busy"), "uuid": None}, id="on-call-id-only-busy"),
        pytest.param(lambda cid: payloads.on_call(cid, "cancelled"), id="on-call-cancelled"),
        pytest.param(lambda cid: payloads.on_call(cid, "rejected"), id="on-call-rejected"),
        pytest.param(lambda cid: payloads.post_call(cid, surprise={"new": "field"}), id="unknown-fields"),
    ],
)
async def test_every_terminal_variant_queues_one_job_with_the_raw_body(client, redis, settings, variant):
    """Each body Wavix has sent for a finished call is accepted and queues process_call, body kept as sent."""
    cid = call_id()
    body = payloads.encode(variant(cid))
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert await queued(redis, settings) == [settings.key_prefix + f"call:{cid}"]
    job = await job_record(redis, settings.key_prefix + f"call:{cid}")
    assert job["f"] == PROCESS_CALL
    receipt = receipt_from(job["a"][0])
    assert receipt.call_id == cid
    assert receipt.body == body


async def test_transcription_webhook_queues_the_transcript_fetch(client, redis, settings):
    """A transcription-completed webhook starts fetch_transcript for that call, separately from the call job."""
    cid = call_id()
    await client.post(URL, content=payloads.encode(payloads.post_call(cid)), headers=JSON)
    response = await client.post(URL, content=payloads.encode(payloads.transcription(cid)), headers=JSON)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    job = await job_record(redis, settings.key_prefix + f"transcript:{cid}")
    assert job["f"] == FETCH_TRANSCRIPT
    expected = sorted(settings.key_prefix + k for k in (f"call:{cid}", f"transcript:{cid}"))
    assert sorted(await queued(redis, settings)) == expected


async def test_transcription_webhook_pulls_the_waiting_poll_forward(client, redis, settings):
    """Poll and webhook share one job id: a webhook for a call whose poll waits moves that job to now and
    queues no second one (one transcript outcome per call)."""
    cid = call_id()
    poll_id = settings.key_prefix + f"transcript:{cid}"
    await redis.set(job_key_prefix + poll_id, b"poll", px=60_000)
    later = int(time.time() * 1000) + 600_000
    await redis.zadd(settings.queue_name, {poll_id: later})
    response = await client.post(URL, content=payloads.encode(payloads.transcription(cid)), headers=JSON)
    assert response.json()["status"] == "accepted"
    assert await redis.get(job_key_prefix + poll_id) == b"poll"  # the waiting job, not a second one
    score = await redis.zscore(settings.queue_name, poll_id)
    assert score is not None and score < later - 500_000
    await redis.delete(job_key_prefix + poll_id)


async def test_transcription_webhook_after_the_poll_finished_queues_again(client, redis, settings):
    """A transcript announced after our poll gave up (its result kept by arq) is still fetched: queued anew."""
    cid = call_id()
    poll_id = settings.key_prefix + f"transcript:{cid}"
    await redis.set(result_key_prefix + poll_id, b"done", px=60_000)
    response = await client.post(URL, content=payloads.encode(payloads.transcription(cid)), headers=JSON)
    assert response.json()["status"] == "accepted"
    assert (await job_record(redis, poll_id))["f"] == FETCH_TRANSCRIPT
    assert await redis.exists(result_key_prefix + poll_id) == 0


@pytest.mark.parametrize("event", ["call_setup", "ringing", "early_media", "answered", "on_call_event"])
async def test_non_terminal_on_call_events_are_acknowledged_and_counted_only(client, redis, settings, event):
    """Progress events answer 200 'ignored', queue nothing and mark nothing seen, but are counted (and recorded)."""
    cid = call_id()
    response = await client.post(URL, content=payloads.encode(payloads.on_call(cid, event)), headers=JSON)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert await queued(redis, settings) == []
    assert await redis.exists(settings.key_prefix + f"seen:call:{cid}") == 0
    metrics = (await client.get("/metrics")).text
    assert 'wavix_webhooks_total{kind="on_call",outcome="ignored"} 1.0' in metrics


@pytest.mark.parametrize("event", ["call_setup", "ringing", "early_media", "answered", "on_call_event"])
@pytest.mark.parametrize(
    "end",
    [
        pytest.param(lambda cid: payloads.post_call(cid), id="post-call"),
        pytest.param(payloads.post_call_whole_cdr, id="post-call-whole-cdr"),
        pytest.param(lambda cid: payloads.on_call(cid, "completed"), id="on-call-completed"),
    ],
)
async def test_a_progress_event_with_a_drifted_record_field_leaves_the_call_to_its_real_end(
    client, redis, settings, event, end
):
    """Issue #22: a progress event with a call-record field drifted in (`sip_trunk` as a number) is recorded,
    queues no `process_call` and takes no dedup mark; the real end-of-call webhook after it is accepted and
    queues the call's one job, and the call's list holds both bodies in arrival order."""
    cid = call_id()
    drifted = payloads.encode({"id": cid, "event_type": event, "sip_trunk": 32882})
    spec_drifted = payloads.encode(payloads.on_call(cid, event, call_completed=None, sip_trunk=32882))
    for body in (drifted, spec_drifted):
        response = await client.post(URL, content=body, headers=JSON)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ignored", "call_id": cid, "event": event}
    assert await queued(redis, settings) == []
    assert await redis.exists(settings.key_prefix + f"seen:call:{cid}") == 0
    assert await redis.exists(job_key_prefix + settings.key_prefix + f"call:{cid}") == 0

    final = payloads.encode(end(cid))
    response = await client.post(URL, content=final, headers=JSON)
    assert response.json()["status"] == "accepted"
    assert await queued(redis, settings) == [settings.key_prefix + f"call:{cid}"]
    job = await job_record(redis, settings.key_prefix + f"call:{cid}")
    assert job["f"] == PROCESS_CALL and receipt_from(job["a"][0]).body == final
    assert [r.body for r in await recorded(redis, settings, cid)] == [drifted, spec_drifted, final]


async def recorded(redis: Redis, settings: Settings, cid: str) -> list[Receipt]:
    entries = await redis.lrange(webhooks_key(settings.key_prefix, cid), 0, -1)
    return [receipt_from(job_deserializer(entry)) for entry in entries]


async def test_every_webhook_of_a_call_is_recorded_in_arrival_order_duplicates_included(client, redis, settings):
    """Progress, terminal, duplicate and transcription webhooks all land in the call's list, bodies as sent."""
    cid = call_id()
    bodies = [
        payloads.encode(payloads.on_call(cid, "ringing")),
        payloads.encode(payloads.on_call(cid, "answered", direction="inbound")),
        payloads.encode(payloads.on_call(cid, "completed")),
        payloads.encode(payloads.post_call(cid)),
        payloads.encode(payloads.post_call(cid)),
        payloads.encode(payloads.transcription(cid)),
    ]
    statuses = [(await client.post(URL, content=b, headers=JSON)).json()["status"] for b in bodies]
    assert statuses == ["ignored", "ignored", "accepted", "duplicate", "duplicate", "accepted"]
    receipts = await recorded(redis, settings, cid)
    assert [r.body for r in receipts] == bodies
    assert [(r.kind, r.event) for r in receipts] == [
        (Kind.ON_CALL, "ringing"), (Kind.ON_CALL, "answered"), (Kind.ON_CALL, "completed"),
        (Kind.POST_CALL, "answered"), (Kind.POST_CALL, "answered"), (Kind.TRANSCRIPTION, "completed"),
    ]
    assert {r.call_id for r in receipts} == {cid}
    assert facts(receipts[1].body).direction == "inbound"
    ttl = await redis.ttl(webhooks_key(settings.key_prefix, cid))
    assert settings.webhook_dedup_ttl - 5 < ttl <= settings.webhook_dedup_ttl


async def test_the_call_list_keeps_only_the_newest_webhooks(client, redis, settings):
    """A call that sends more than WEBHOOKS_KEPT webhooks keeps the newest ones: the list cannot grow unbounded."""
    cid = call_id()
    for n in range(WEBHOOKS_KEPT + 6):
        body = payloads.encode(payloads.on_call(cid, "on_call_event", tag=str(n)))
        assert (await client.post(URL, content=body, headers=JSON)).json()["status"] == "ignored"
    await client.post(URL, content=payloads.encode(payloads.post_call(cid)), headers=JSON)
    receipts = await recorded(redis, settings, cid)
    assert len(receipts) == WEBHOOKS_KEPT
    assert receipts[0].body == payloads.encode(payloads.on_call(cid, "on_call_event", tag="7"))
    assert receipts[-1].kind is Kind.POST_CALL


async def test_a_progress_event_with_redis_down_answers_503(settings):
    """A progress event that cannot be recorded answers 503 like the enqueue path, so nothing is claimed."""
    down = msgspec.structs.replace(settings, redis_url="redis://127.0.0.1:1/0")
    async with AsyncTestClient(app=create_app(down)) as broken:
        response = await broken.post(URL, content=payloads.encode(payloads.on_call(call_id(), "ringing")),
                                     headers=JSON)
    assert response.status_code == 503
    assert response.json()["error"] == "queue_unavailable"
    assert response.headers["retry-after"] == "5"


async def test_post_call_and_on_call_completed_for_one_call_make_one_job(client, redis, settings):
    """The same call announced twice (post-call, then on-call completed, then post-call again) queues once."""
    cid = call_id()
    answers = []
    for body in (payloads.post_call(cid), payloads.on_call(cid, "completed"), payloads.post_call(cid)):
        answers.append((await client.post(URL, content=payloads.encode(body), headers=JSON)).json()["status"])
    assert answers == ["accepted", "duplicate", "duplicate"]
    assert await queued(redis, settings) == [settings.key_prefix + f"call:{cid}"]
    ttl = await redis.ttl(settings.key_prefix + f"seen:call:{cid}")
    assert settings.webhook_dedup_ttl - 5 < ttl <= settings.webhook_dedup_ttl


async def test_dedup_outlives_the_job_and_its_result(client, redis, settings):
    """Once the job ran and arq forgot it, a late repeat of the webhook still queues nothing."""
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid))
    await client.post(URL, content=body, headers=JSON)
    await redis.delete(job_key_prefix + settings.key_prefix + f"call:{cid}")
    await redis.zrem(settings.queue_name, settings.key_prefix + f"call:{cid}")
    response = await client.post(URL, content=body, headers=JSON)
    assert response.json()["status"] == "duplicate"
    assert await queued(redis, settings) == []


async def test_fifty_identical_webhooks_at_once_give_exactly_one_job(client, redis, settings):
    """Concurrent repeats race through the atomic script: one accepted, 49 duplicates, one job."""
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid))
    responses = await asyncio.gather(*(client.post(URL, content=body, headers=JSON) for _ in range(50)))
    statuses = sorted(r.json()["status"] for r in responses)
    assert [r.status_code for r in responses] == [200] * 50
    assert statuses.count("accepted") == 1
    assert statuses.count("duplicate") == 49
    assert await queued(redis, settings) == [settings.key_prefix + f"call:{cid}"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param(b"{not json", 400, "$", id="not-json"),
        pytest.param(b"[1, 2]", 400, "$", id="not-an-object"),
        pytest.param(payloads.encode({"disposition": "answered"}), 400, "$.uuid", id="missing-uuid"),
        pytest.param(payloads.encode({"uuid": 12345, "disposition": "answered"}), 400, "$.uuid", id="uuid-number"),
        pytest.param(payloads.encode({"event_type": "completed"}), 400, "$.id", id="on-call-without-id"),
        pytest.param(b'"a string"', 400, "$", id="a-string"),
        pytest.param(payloads.encode({"uuid": "../../v1/balance", "disposition": "busy"}), 400, "$.uuid",
                     id="path-in-uuid"),
        pytest.param(payloads.encode({"uuid": "   ", "disposition": "busy"}), 400, "$.uuid", id="blank-uuid"),
    ],
)
async def test_unusable_bodies_get_400_naming_the_field_and_queue_nothing(client, redis, settings, body, status, field):
    """A body that cannot be used answers a JSON error naming the JSON path; nothing is queued."""
    response = await client.post(URL, content=body, headers=JSON)
    assert response.status_code == status
    assert response.json()["error"] == "invalid_payload"
    assert response.json()["field"] == field
    assert await queued(redis, settings) == []


async def test_a_body_over_64_kib_gets_413(client, redis, settings):
    """An oversized body is refused with 413 and a JSON error before it is decoded."""
    big = payloads.encode(payloads.post_call(call_id(), padding="x" * 70_000))
    response = await client.post(URL, content=big, headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert await queued(redis, settings) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_a_non_json_content_type_gets_415(client, redis, settings, content_type):
    """Only JSON is accepted; another declared type answers 415 and queues nothing."""
    body = payloads.encode(payloads.post_call(call_id()))
    response = await client.post(URL, content=body, headers={"content-type": content_type})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert await queued(redis, settings) == []


async def test_json_with_charset_and_the_second_token_are_accepted(client, redis, settings):
    """`application/json; charset=utf-8` is JSON, and every configured token (rotation) works."""
    response = await client.post(
        "/webhooks/wavix/second-token-" + "y" * 20,
        content=payloads.encode(payloads.post_call(call_id())),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert len(await queued(redis, settings)) == 1


async def test_an_unknown_token_gets_404_and_never_reaches_the_logs(client, redis, settings, caplog):
    """A wrong token answers 404, queues nothing, and neither token appears in any log line."""
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-token-" + "z" * 20
    body = payloads.encode(payloads.post_call(call_id()))
    response = await client.post(f"/webhooks/wavix/{wrong}", content=body, headers=JSON)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    await client.post(URL, content=body, headers=JSON)
    assert len(await queued(redis, settings)) == 1
    assert caplog.records, "the receiver should have logged something"
    # The test's own HTTP client (httpx) logs the URL it called; everything the service logged is checked.
    served = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in served)
    assert wrong not in logged
    assert TOKEN not in logged


async def test_redis_down_answers_503_and_marks_nothing_seen(settings, redis):
    """With Redis unreachable the webhook gets a JSON 503 to retry; once Redis is back it is accepted."""
    down = msgspec.structs.replace(settings, redis_url="redis://127.0.0.1:1/0")
    cid = call_id()
    body = payloads.encode(payloads.post_call(cid))
    async with AsyncTestClient(app=create_app(down)) as broken:
        response = await broken.post(URL, content=body, headers=JSON)
        assert response.status_code == 503
        assert response.json()["error"] == "queue_unavailable"
        assert response.headers["retry-after"] == "5"
        assert (await broken.get("/readyz")).status_code == 503
        assert (await broken.get("/healthz")).status_code == 200
    assert await redis.exists(settings.key_prefix + f"seen:call:{cid}") == 0
    async with AsyncTestClient(app=create_app(settings)) as healthy:
        retried = await healthy.post(URL, content=body, headers=JSON)
        assert retried.json()["status"] == "accepted"
        assert (await healthy.get("/readyz")).status_code == 200


async def test_metrics_count_outcomes(client):
    """Accepted, duplicate and rejected webhooks are counted by kind and outcome."""
    body = payloads.encode(payloads.post_call(call_id()))
    await client.post(URL, content=body, headers=JSON)
    await client.post(URL, content=body, headers=JSON)
    await client.post(URL, content=b"nope", headers=JSON)
    text = (await client.get("/metrics")).text
    assert 'wavix_webhooks_total{kind="post_call",outcome="accepted"} 1.0' in text
    assert 'wavix_webhooks_total{kind="post_call",outcome="duplicate"} 1.0' in text
    assert 'wavix_webhooks_total{kind="unknown",outcome="rejected_payload"} 1.0' in text


async def test_metrics_report_queue_depth_and_oldest_age(client, settings):
    """/metrics samples the queue at scrape time: two accepted calls are a depth of 2 with a positive age."""
    for _ in range(2):
        await client.post(URL, content=payloads.encode(payloads.post_call(call_id())), headers=JSON)
    await asyncio.sleep(0.05)
    text = (await client.get("/metrics")).text
    assert "wavix_queue_depth 2.0" in text
    age = float(re.search(r"^wavix_queue_oldest_age_seconds (\S+)$", text, re.M).group(1))
    assert 0.0 < age < 60.0
