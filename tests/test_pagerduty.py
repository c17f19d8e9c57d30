"""PagerDuty: Events API v2 events per call and reason or per incident, their answers, and the real worker.

The stand-in (sandbox/pagerduty.py) checks events with its own rules and keeps PagerDuty's alerts by dedup key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from contract.errors import SettingsError
from contract.events import COMPLETED
from contract.settings import Settings
from sandbox import pagerduty as pd
from sandbox.config import SandboxConfig
from tests.pipeline import by_type, pipeline
from tests.test_alerts import make_alert
from workers.alert.alerting import slack_only
from workers.alert.errors import ChannelPermanent, ChannelRateLimited, ChannelRetry
from workers.alert.outbox import dispatch_pending, queue_alert
from workers.alert.pagerduty import PagerDutySender, pagerduty_channel, render_pagerduty
from workers.alert.rules import Alert, DeliveryPolicy


@pytest.fixture
async def standin() -> AsyncIterator[tuple[pd.PagerDutyStandIn, str]]:
    stand = pd.PagerDutyStandIn()
    async with pd.serve(stand) as base:
        yield stand, base + pd.PATH


def incident(resolved: bool = False) -> Alert:
    return Alert(call_id="incident-destination_failing-crm-1", reason="pipeline:destination_failing",
                 occurred_at="2026-07-01T12:00:00Z", title="destination crm failing for 10 min",
                 detail="503 since 12:00", resolved=resolved)


def test_a_call_alert_is_a_trigger_keyed_by_call_and_reason() -> None:
    """A call's alert: a trigger whose dedup_key is `call_id:reason`, a summary, a severity PagerDuty knows,
    the call's facts as custom details, and links; the routing key is not in the message at all."""
    event = render_pagerduty([msgspec.structs.replace(make_alert(2), link="https://console.example/calls/call-0002")])
    assert (event["event_action"], event["dedup_key"]) == ("trigger", "call-0002:failed")
    payload = event["payload"]
    assert payload["summary"].startswith("Call failed") and payload["severity"] == "warning"
    assert payload["custom_details"]["Call"] == "call-0002" and payload["class"] == "failed"
    assert event["links"][0]["href"] == "https://console.example/calls/call-0002"
    assert "routing_key" not in event
    assert pd.event_problems({"routing_key": pd.ROUTING_KEY, **event}, frozenset({pd.ROUTING_KEY})) == []


def test_an_incident_triggers_and_resolves_under_one_key() -> None:
    """A pipeline incident's opening is a trigger and its end a resolve, with the same dedup_key (its id)."""
    trigger, resolve = render_pagerduty([incident()]), render_pagerduty([incident(resolved=True)])
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "error"
    assert resolve == {"event_action": "resolve", "dedup_key": trigger["dedup_key"]}
    assert trigger["dedup_key"] == "incident-destination_failing-crm-1"


def test_long_values_are_clipped_to_pagerdutys_limits() -> None:
    """A summary over 1,024 characters and a dedup key over 255 would be refused: they are clipped."""
    event = render_pagerduty([make_alert(1, call_id="c" * 400, from_number="+1" * 900)])
    assert len(event["payload"]["summary"]) <= 1024 and len(event["dedup_key"]) <= 255
    assert pd.event_problems({"routing_key": pd.ROUTING_KEY, **event}, frozenset({pd.ROUTING_KEY})) == []


@pytest.mark.parametrize(
    ("answer", "raised", "reason", "delay"),
    [
        (pd.throttled(4), ChannelRateLimited, "Requests for this service", 4.0),
        (pd.throttled(None), ChannelRateLimited, "Requests for this service", 30.0),
        (pd.invalid("'payload.severity' is invalid"), ChannelPermanent, "Event object is invalid: 'payload.sev", None),
        (pd.Answer(500, b"", "text/plain"), ChannelRetry, "http_500", None),
    ],
)
async def test_pagerdutys_answers_are_classified(
    standin: tuple[pd.PagerDutyStandIn, str], answer: pd.Answer, raised: type[Exception], reason: str, delay: Any
) -> None:
    """429 waits Retry-After, or 30 s without one (PagerDuty's advice); 400 is for good with PagerDuty's
    words; 5xx retries on the schedule. The routing key is never in the error."""
    stand, url = standin
    async with httpx.AsyncClient() as http:
        sender = PagerDutySender(http, pd.ROUTING_KEY, url)
        stand.script(answer)
        with pytest.raises(raised) as caught:
            await sender.send(render_pagerduty([make_alert()]))
        await sender.send(render_pagerduty([make_alert()]))
    assert type(caught.value) is raised and caught.value.reason.startswith(reason)  # type: ignore[attr-defined]
    if isinstance(caught.value, ChannelRetry):
        assert caught.value.delay_s == delay
    assert pd.ROUTING_KEY not in str(caught.value) + repr(sender)
    assert stand.received[-1].status == 202


async def test_an_incident_opened_and_ended_leaves_no_open_alert_in_pagerduty(
    redis: Redis, standin: tuple[pd.PagerDutyStandIn, str]
) -> None:
    """Through the outbox: the incident's trigger opens one PagerDuty alert, its resolve closes that alert,
    and each is sent once however often it is queued."""
    stand, url = standin
    policy = DeliveryPolicy(prefix=f"test:pd:{uuid.uuid4().hex}:")
    try:
        async with httpx.AsyncClient() as http:
            channel = pagerduty_channel(http, pd.ROUTING_KEY, url=url, pace_s=0.01)
            for alert in (incident(), incident(), incident(resolved=True), incident(resolved=True)):
                await queue_alert(redis, alert, policy=policy, channel="pagerduty")
            await dispatch_pending(redis, channel, digest_threshold=5, dead_letter_stream=policy.prefix + "dead",
                                   policy=policy)
        [alert] = stand.alerts.values()
        assert [e["event_action"] for e in alert.events] == ["trigger", "resolve"] and not stand.open_alerts()
    finally:
        await redis.delete(*[k async for k in redis.scan_iter(match=policy.prefix + "*")] or ["-"])


def test_pagerduty_gets_only_what_a_rule_names() -> None:
    """A bare rule goes to the default channels, never to PagerDuty (it pages someone); `failed=pagerduty`
    goes there; a key of the wrong length is refused at start, naming PAGERDUTY_ROUTING_KEY."""
    alerting = slack_only()
    alerting.channels = {"pagerduty": object()}  # type: ignore[dict-item]
    assert "pagerduty" not in alerting.channels_for("failed")
    with pytest.raises(SettingsError, match="PAGERDUTY_ROUTING_KEY"):
        Settings.from_env({"PAGERDUTY_ROUTING_KEY": "short"})
    with pytest.raises(SettingsError, match="ALERT_RULES"):
        Settings.from_env({"ALERT_RULES": "failed=pagerduty"})
    assert Settings.from_env({"ALERT_RULES": "failed=pagerduty", "PAGERDUTY_ROUTING_KEY": pd.ROUTING_KEY})


async def test_the_worker_triggers_each_failed_call_once() -> None:
    """Duplicate webhooks, two workers side by side: each failed call is one PagerDuty alert with one
    trigger, keyed `call_id:failed`; machine-answered calls (not routed there) page nobody."""
    stand = pd.PagerDutyStandIn()
    async with pd.serve(stand) as base, pipeline(
            SandboxConfig(seed=5, transcript_share=0.0), PAGERDUTY_ROUTING_KEY=pd.ROUTING_KEY,
            PAGERDUTY_URL=base + pd.PATH, ALERT_RULES="failed=pagerduty+slack,machine",
            ALERT_DIGEST_THRESHOLD="1000") as p:
        await p.place_and_send(30, duplicates=1.0)
        await asyncio.gather(p.run_worker(), p.run_worker())
        async with httpx.AsyncClient() as http:
            await dispatch_pending(p.redis, pagerduty_channel(http, pd.ROUTING_KEY, url=base + pd.PATH),
                                   digest_threshold=1000, dead_letter_stream=p.settings.dead_letter_stream,
                                   policy=DeliveryPolicy(prefix=p.settings.key_prefix))
        completed = by_type(await p.events(), COMPLETED)
        failed = {c for c, e in completed.items() if "failed" in e[0].data.alert_reasons}
        assert failed, "the seed should give failed calls"
        assert set(stand.alerts) == {f"{c}:failed" for c in failed}
        assert all(len(a.events) == 1 for a in stand.alerts.values())
