"""Alerts: what one alert and a digest look like, Slack's Block Kit limits, and "one alert per call, ever"."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from sandbox.slack import block_kit_problems
from workers.alert.outbox import queue_alert
from workers.alert.rules import (
    DIGEST_LINES,
    Alert,
    DeliveryPolicy,
    decode_alert,
    decode_pending,
    encode_alert,
    pending_keys,
    render_alert,
    render_digest,
)


def make_alert(n: int = 1, **changes: Any) -> Alert:
    base = Alert(
        call_id=f"call-{n:04d}",
        reason="failed",
        occurred_at="2026-07-01T12:00:00Z",
        direction="outbound",
        from_number="+15551230000",
        to_number=f"+4930123{n:04d}",
        disposition="failed",
        answered_by=None,
        duration_s="0",
        cost="0.0000",
        destination="Germany",
        recording_url="https://recordings.example/r/abc.mp3",
        summary="Caller asked for a refund.",
    )
    return msgspec.structs.replace(base, **changes)


def texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "text" and isinstance(v, str)] + [
            t for k, v in node.items() if k != "text" or not isinstance(v, str) for t in texts(v)
        ]
    if isinstance(node, list):
        return [t for item in node for t in texts(item)]
    return []


def mrkdwn_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for v in node.values() for t in mrkdwn_texts(v)]
    if isinstance(node, list):
        return [t for item in node for t in mrkdwn_texts(item)]
    return []


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    """Checks the limits directly, and through the stand-in's independent validator."""
    blocks = message["blocks"]
    assert isinstance(message["text"], str) and 0 < len(message["text"]) <= 3000
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
    assert sum(len(t) for t in texts(blocks)) < 10_000
    assert block_kit_problems(message) == []


def test_one_alert_has_header_fields_recording_summary_and_context() -> None:
    """A single alert shows the call's essentials as fields, a recording button, the summary and context."""
    message = render_alert(make_alert(7, reason="machine", answered_by="machine"))
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "actions", "section", "context"]
    assert "Answered by a machine" in message["blocks"][0]["text"]["text"]
    fields = " ".join(f["text"] for f in message["blocks"][1]["fields"])
    for wanted in ("call-0007", "+15551230000", "+49301230007", "outbound", "machine", "$0.0000", "Germany"):
        assert wanted in fields
    assert message["blocks"][2]["elements"][0]["url"] == "https://recordings.example/r/abc.mp3"
    assert "Caller asked for a refund." in message["blocks"][3]["text"]["text"]
    assert "call-0007" in message["text"]
    assert_within_slack_limits(message)


def test_alert_without_recording_or_summary_leaves_them_out() -> None:
    """No recording URL and no summary: no button and no summary section, nothing empty is sent."""
    message = render_alert(make_alert(recording_url=None, summary=None))
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "context"]
    assert_within_slack_limits(message)


def test_caller_text_cannot_ping_the_channel() -> None:
    """Values are escaped wherever Slack parses mrkdwn: `<!channel>` in a transcript never becomes a ping.

    (The header is plain_text, which Slack shows literally, so it needs no escaping.)
    """
    message = render_alert(make_alert(summary="hi <!channel> & <https://evil|click>", from_number="<!here>"))
    parsed = [message["text"], *mrkdwn_texts(message["blocks"])]
    assert not any("<!channel>" in t or "<!here>" in t for t in parsed)
    assert any("&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in t for t in parsed)
    assert any("&lt;!here&gt;" in t for t in parsed)


def test_huge_single_alert_stays_within_block_kit_limits() -> None:
    """Absurdly long values (summary, numbers, ids, URL) are clipped, never breaking Slack's limits."""
    huge = make_alert(
        call_id="c" * 5000,
        from_number="+1" * 3000,
        to_number="&" * 5000,
        destination="D" * 9000,
        occurred_at="T" * 4000,
        summary="<word> " * 5000,
        recording_url="https://r.example/" + "x" * 5000,
    )
    message = render_alert(huge)
    assert_within_slack_limits(message)
    assert not any(b["type"] == "actions" for b in message["blocks"])  # a URL Slack would refuse is dropped


def test_digest_lists_forty_calls_then_counts_the_rest() -> None:
    """A digest of 1,000 alerts: header "1000 call alerts", 40 lines, then "... and 960 more"."""
    alerts = [make_alert(n, reason="machine" if n % 4 == 0 else "failed") for n in range(1000)]
    message = render_digest(alerts)
    assert message["blocks"][0]["text"]["text"].endswith("1000 call alerts")
    body = "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
    assert body.count("• ") == DIGEST_LINES
    assert "and 960 more" in body
    assert "750 failed" in message["text"] and "250 answered by a machine" in message["text"]
    assert_within_slack_limits(message)


def test_digest_of_huge_alerts_stays_within_limits_and_counts_everyone() -> None:
    """Huge values shrink the digest to fewer lines, and the lines shown plus "K more" still add up to N."""
    alerts = [make_alert(n, from_number="9" * 4000, call_id=f"{n}-" + "z" * 4000) for n in range(300)]
    message = render_digest(alerts)
    assert_within_slack_limits(message)
    body = "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
    shown = body.count("• ")
    assert 0 < shown <= DIGEST_LINES
    assert f"and {300 - shown} more" in body


def test_alert_round_trips_through_msgpack() -> None:
    """What Redis and the dead-letter stream hold is msgpack that decodes back to the same alert."""
    alert = make_alert(3, summary=None)
    data = encode_alert(alert)
    assert isinstance(data, bytes) and not data.startswith(b"\x80")  # not a pickle
    assert decode_alert(data) == alert


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    yield client
    await client.aclose()


@pytest.fixture
async def policy(redis: Redis) -> AsyncIterator[DeliveryPolicy]:
    prefix = f"test:alerts:{uuid.uuid4().hex}:"
    yield DeliveryPolicy(prefix=prefix)
    keys = [key async for key in redis.scan_iter(match=prefix + "*", count=10_000)]
    if keys:
        await redis.delete(*keys)


async def test_queued_five_times_is_one_pending_alert(redis: Redis, policy: DeliveryPolicy) -> None:
    """The same call and reason queued 5 times (repeated webhooks, retries) is pending exactly once."""
    alert = make_alert(1)
    results = [await queue_alert(redis, alert, policy=policy) for _ in range(5)]
    assert results == [True, False, False, False, False]
    due, data = pending_keys(policy.prefix)
    assert await redis.zcard(due) == 1
    record = decode_pending(await redis.hget(data, alert.key))  # type: ignore[misc]
    assert record.alert == alert and record.attempts == 0
    assert 0 < await redis.ttl(f"{policy.prefix}alerted:call-0001:failed") <= policy.alerted_ttl_s


async def test_concurrent_queueing_from_many_connections_yields_one_alert(policy: DeliveryPolicy) -> None:
    """Twenty tasks on separate connections (like separate workers) race: exactly one wins."""
    clients = [Redis.from_url("redis://127.0.0.1:6379/0") for _ in range(20)]
    try:
        results = await asyncio.gather(*(queue_alert(c, make_alert(9), policy=policy) for c in clients))
        assert sum(results) == 1
        assert await clients[0].zcard(pending_keys(policy.prefix)[0]) == 1
    finally:
        for c in clients:
            await c.aclose()


async def test_each_reason_of_a_call_alerts_once(redis: Redis, policy: DeliveryPolicy) -> None:
    """One alert per call AND reason: a failed call answered by a machine may alert twice, not more."""
    assert await queue_alert(redis, make_alert(5, reason="failed"), policy=policy)
    assert await queue_alert(redis, make_alert(5, reason="machine"), policy=policy)
    assert not await queue_alert(redis, make_alert(5, reason="machine"), policy=policy)
    assert await redis.zcard(pending_keys(policy.prefix)[0]) == 2


async def test_force_requeues_an_alert_already_sent(redis: Redis, policy: DeliveryPolicy) -> None:
    """Replaying a dead-lettered alert (`force=True`) queues it again despite the once-ever mark."""
    alert = make_alert(6)
    assert await queue_alert(redis, alert, policy=policy)
    await redis.delete(*pending_keys(policy.prefix))  # as after it was dead-lettered
    assert not await queue_alert(redis, alert, policy=policy)
    assert await queue_alert(redis, alert, policy=policy, force=True)
    assert await redis.zcard(pending_keys(policy.prefix)[0]) == 1
