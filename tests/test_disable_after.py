"""`disable_after` per destination: read from the routing file (one-line errors naming the line), and used by the
worker's auto-disable instead of DESTINATION_DISABLE_AFTER for that destination alone.

The last test runs the real worker against two destinations that both answer 503, with the PagerDuty stand-in.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from sandbox import pagerduty as pd
from sandbox.config import SandboxConfig
from tests.conftest import REDIS_URL
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import pipeline
from workers.alert.alerting import Alerting
from workers.alert.incidents import check_pipeline
from workers.alert.outbox import dispatch_pending
from workers.alert.pagerduty import pagerduty_channel
from workers.alert.rules import DeliveryPolicy
from workers.deliver import health
from workers.deliver.route import RouteError, parse_destinations

HEAD = "destinations:\n  - name: crm\n    url: redis://h/0?stream=s\n"


@pytest.mark.parametrize(("value", "seconds"), [("30m", 1800.0), ("2d", 172_800.0), ("90", 90.0), ("0", 0.0),
                                                ("1h30m", 5400.0)])
def test_disable_after_reads_durations_and_zero_for_never(value: str, seconds: float) -> None:
    """A duration (30m, 2d, 1h30m), seconds as a number, or 0 (never); absent, the destination has none of its
    own (None: the worker uses DESTINATION_DISABLE_AFTER)."""
    [crm] = parse_destinations(f"{HEAD}    disable_after: {value}\n", {})
    assert crm.disable_after_s == seconds
    [plain] = parse_destinations(HEAD, {})
    assert plain.disable_after_s is None


@pytest.mark.parametrize(("value", "expected"), [
    ("soon", "sinks.yaml:4: destination \"crm\": disable_after: not a duration: 'soon' (use e.g. 30s, 5m, 2h, 2d)"),
    ("-5", 'sinks.yaml:4: destination "crm": disable_after: a duration cannot be negative'),
    ("[1d]", 'sinks.yaml:4: destination "crm": disable_after: expected a duration (30m, 2h, 5d) or 0'),
    ("yes", 'sinks.yaml:4: destination "crm": disable_after: expected a duration (30m, 2h, 5d) or 0'),
])
def test_a_bad_disable_after_is_refused_in_one_line_naming_its_line(value: str, expected: str) -> None:
    """Words, negative numbers, lists and booleans are refused at load with the file, line and destination."""
    with pytest.raises(RouteError) as caught:
        parse_destinations(f"{HEAD}    disable_after: {value}\n", {})
    assert str(caught.value) == expected and "\n" not in str(caught.value)


def test_a_misspelt_disable_after_is_refused_with_the_right_name() -> None:
    """`disabled_after` is an unknown field, and the error names `disable_after`."""
    with pytest.raises(RouteError, match=r'sinks.yaml:4: .*unknown field "disabled_after" \(did you mean '
                                         r'"disable_after"\?\)'):
        parse_destinations(f"{HEAD}    disabled_after: 1d\n", {})


async def test_only_the_destination_with_a_short_disable_after_is_paused_and_alerted(tmp_path: Path) -> None:
    """Real worker; crm and erp both answer 503. crm's `disable_after: 2s` pauses it once it has failed 2 s, with
    one `destination_paused` incident in PagerDuty and its deliveries parked; erp, under the global 5 days, goes
    on failing: not paused, no such incident (its failing incident is the same for both)."""
    standin = pd.PagerDutyStandIn()
    crm, erp = WebhookReceiver(status=503), WebhookReceiver(status=503)
    for receiver in (crm, erp):
        await receiver.start()
    stream = f"test:events:{uuid.uuid4().hex}"
    retry = "    retry: {schedule: [1s, 1s, 1s, 1s, 1s, 1s]}\n"
    routing = tmp_path / "sinks.yaml"
    routing.write_text(
        "destinations:\n"
        f"  - name: events\n    url: {REDIS_URL}?stream={stream}\n"
        f"  - name: crm\n    url: http://127.0.0.1:{crm.port}/hooks\n    secret: {crm.secret}\n{retry}"
        "    disable_after: 2s\n"
        f"  - name: erp\n    url: http://127.0.0.1:{erp.port}/hooks\n    secret: {erp.secret}\n{retry}")
    try:
        async with pd.serve(standin) as base, pipeline(
                SandboxConfig(seed=3, transcript_share=0.0), SINKS_CONFIG=str(routing), EVENTS_STREAM=stream,
                PAGERDUTY_ROUTING_KEY=pd.ROUTING_KEY, PAGERDUTY_URL=base + pd.PATH, ALERT_RULES="pipeline=pagerduty",
                PIPELINE_FAILING_AFTER="1") as p:
            await p.place_and_send(2)
            await p.run_worker()
            prefix = p.settings.key_prefix
            rows = {row.name: row for row in await health.read(p.redis, prefix, ["crm", "erp"])}
            assert rows["crm"].paused and rows["crm"].parked > 0
            assert not rows["erp"].paused and rows["erp"].streak > 0
            async with httpx.AsyncClient() as http:  # what the worker queued, sent (its dispatcher stopped with it)
                channel = pagerduty_channel(http, pd.ROUTING_KEY, url=base + pd.PATH, pace_s=0.01)
                alerting = Alerting(config=p.settings.alerting(), channels={"pagerduty": channel},
                                    policy=DeliveryPolicy(prefix=prefix))
                await check_pipeline(p.redis, alerting, ["crm", "erp"], prefix=prefix, failing_after_s=1,
                                     disable_after_s=5 * 86_400, disable_after={"crm": 2})
                await dispatch_pending(p.redis, channel, digest_threshold=5, dead_letter_stream=prefix + "dead",
                                       policy=alerting.policy)
            paused = [key for key in standin.alerts if key.startswith("destination_paused:")]
            assert [key.split(":")[1] for key in paused] == ["crm"]
            [alert] = [standin.alerts[key] for key in paused]
            assert [e["event_action"] for e in alert.events] == ["trigger"]
            assert "Destination crm disabled after failing" in alert.events[0]["payload"]["summary"]
            failing = sorted(key.split(":")[1] for key in standin.alerts if key.startswith("destination_failing:"))
            assert failing == ["crm", "erp"]
    finally:
        for receiver in (crm, erp):
            await receiver.stop()
