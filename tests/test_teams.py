"""Teams: the Adaptive Card a Workflows webhook takes, what its answers mean, and the real worker posting there.

The stand-in (sandbox/teams.py) checks cards with its own rules; the worker test runs the real arq worker
twice over duplicate webhooks, against the Wavix sandbox and the Teams stand-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from contract.errors import SettingsError
from contract.events import COMPLETED
from contract.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.teams import Answer, TeamsStandIn, card_problems, error, serve, throttled
from tests.pipeline import by_type, pipeline
from tests.test_alerts import make_alert
from workers.alert.errors import ChannelPermanent, ChannelRateLimited, ChannelRetry
from workers.alert.outbox import dispatch_pending
from workers.alert.rules import DeliveryPolicy
from workers.alert.teams import MESSAGE_MAX, TeamsSender, render_teams, teams_channel


@pytest.fixture
async def teams() -> AsyncIterator[tuple[TeamsStandIn, TeamsSender]]:
    standin = TeamsStandIn(enforce_rate=False)
    async with serve(standin) as base, httpx.AsyncClient(timeout=5.0) as http:
        yield standin, TeamsSender(http, standin.url(base))


def card(message: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = message["attachments"][0]["content"]
    return content


def test_one_alert_is_an_adaptive_card_with_facts_and_buttons() -> None:
    """A call's alert: the title, the call's facts, the summary, and buttons to the console and recording."""
    alert = msgspec.structs.replace(make_alert(5), link="https://console.example/calls/call-0005")
    message = render_teams([alert])
    content = card(message)
    assert message["type"] == "message" and content["type"] == "AdaptiveCard"
    assert content["body"][0]["text"].startswith("Call failed: +15551230000 → +49301230005")
    facts = {f["title"]: f["value"] for f in content["body"][1]["facts"]}
    assert facts["Call"] == "call-0005" and facts["Cost"] == "$0.0000" and facts["Destination"] == "Germany"
    assert [a["url"] for a in content["actions"]] == ["https://console.example/calls/call-0005",
                                                      "https://recordings.example/r/abc.mp3"]
    assert card_problems(message) == []


def test_huge_values_and_a_digest_stay_inside_teams_limits() -> None:
    """Absurd values are clipped and a 500-alert digest names 40 calls then counts the rest: every message is
    a card Teams shows, under its 28 KB."""
    huge = make_alert(1, call_id="c" * 5000, summary="s" * 50_000, from_number="+1" * 3000)
    for message in (render_teams([huge]), render_teams([make_alert(n) for n in range(500)])):
        assert card_problems(message) == [] and len(msgspec.json.encode(message)) < MESSAGE_MAX
    digest = msgspec.json.encode(render_teams([make_alert(n) for n in range(500)])).decode()
    assert "500 call alerts" in digest and "… and 460 more" in digest


def test_a_caller_cannot_make_a_link_in_the_card() -> None:
    """Markdown links in what a caller controls (a summary) are broken apart: Teams shows them as text."""
    message = render_teams([make_alert(summary="[click here](https://evil.example)")])
    text = msgspec.json.encode(message).decode()
    assert "](https://evil" not in text and "click here" in text


@pytest.mark.parametrize(
    ("answer", "raised", "reason", "delay"),
    [
        (throttled(3), ChannelRateLimited, "WorkflowRequestsThrottled", 3.0),
        (throttled(None), ChannelRateLimited, "WorkflowRequestsThrottled", 1.0),
        (error(400, "TriggerInputSchemaMismatch"), ChannelPermanent, "TriggerInputSchemaMismatch", None),
        (error(401, "DirectApiAuthorizationRequired"), ChannelPermanent, "DirectApiAuthorizationRequired", None),
        (error(404, "WorkflowNotFound"), ChannelPermanent, "WorkflowNotFound", None),
        (error(502, "BadGateway"), ChannelRetry, "BadGateway", None),
        (Answer(503, b"", "text/plain"), ChannelRetry, "http_503", None),
    ],
)
async def test_a_flows_answers_are_classified(
    teams: tuple[TeamsStandIn, TeamsSender], answer: Answer, raised: type[Exception], reason: str, delay: Any
) -> None:
    """429 waits Retry-After (1 s without one), 5xx retries on the schedule, any other 4xx is for good;
    the reason is the flow's error code, and never the URL."""
    standin, sender = teams
    standin.script(answer)
    with pytest.raises(raised) as caught:
        await sender.send(render_teams([make_alert()]))
    assert type(caught.value) is raised and caught.value.reason == reason  # type: ignore[attr-defined]
    if isinstance(caught.value, ChannelRetry):
        assert caught.value.delay_s == delay
    assert standin.sig not in str(caught.value) and standin.sig not in repr(sender)
    await sender.send(render_teams([make_alert()]))  # the script is used up: 202 again
    assert standin.received[-1].status == 202


async def test_the_standin_refuses_what_a_flow_refuses(teams: tuple[TeamsStandIn, TeamsSender]) -> None:
    """A MessageCard (the retired connectors' format), a wrong signature and a body that is not JSON are
    refused as a Workflows trigger refuses them."""
    standin, sender = teams
    message_card = {"@type": "MessageCard", "@context": "https://schema.org/extensions", "text": "hi"}
    with pytest.raises(ChannelPermanent, match="TriggerInputSchemaMismatch"):
        await sender.send(message_card)
    async with httpx.AsyncClient() as http:
        url = str(sender._url)
        wrong = await http.post(url.replace(standin.sig, "forged"), json=render_teams([make_alert()]))
        not_json = await http.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert (wrong.status_code, not_json.status_code) == (401, 400)
    assert not_json.json()["error"]["code"] == "InvalidRequestContent"


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"TEAMS_WEBHOOK_URL": "https://contoso.webhook.office.com/webhookb2/x/IncomingWebhook/y/z"},
         "TEAMS_WEBHOOK_URL", "retired"),
        ({"TEAMS_WEBHOOK_URL": "prod-01.westus.logic.azure.com/workflows/x"}, "TEAMS_WEBHOOK_URL", "http(s)"),
        ({"ALERT_RULES": "failed=teams"}, "ALERT_RULES", "not configured"),
        ({"ALERT_RULES": "failed=msteams"}, "ALERT_RULES", "unknown channel"),
    ],
)
def test_teams_settings_are_checked_at_start(env: dict[str, str], variable: str, words: str) -> None:
    """An Office 365 connector URL is refused naming the fix (a Workflows webhook); a rule naming Teams
    without its URL, or a channel that does not exist, is one line naming ALERT_RULES."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable and words in str(caught.value)


async def test_the_worker_posts_each_alerted_call_to_teams_once() -> None:
    """Duplicate webhooks, two workers side by side: every alerted call and reason is in exactly one Teams
    message (a card, or a line of a digest), as it is in exactly one Slack message."""
    standin = TeamsStandIn()
    async with serve(standin) as base, pipeline(SandboxConfig(seed=5, transcript_share=0.0),
                                                TEAMS_WEBHOOK_URL=standin.url(base),
                                                ALERT_RULES="failed,machine,busy,no_answer") as p:
        await p.place_and_send(30, duplicates=1.0)
        await asyncio.gather(p.run_worker(), p.run_worker())
        policy = DeliveryPolicy(prefix=p.settings.key_prefix)
        async with httpx.AsyncClient() as http:
            await dispatch_pending(p.redis, teams_channel(http, standin.url(base)), digest_threshold=5,
                                   dead_letter_stream=p.settings.dead_letter_stream, policy=policy)
        await p.flush_alerts()
        alerted = {(c, e[0].data.alert_reasons) for c, e in by_type(await p.events(), COMPLETED).items()
                   if e[0].data.alert_reasons}
        assert alerted, "the seed should give alerted calls"
        posted = [msgspec.json.encode(r.message).decode() for r in standin.accepted()]
        for call_id, _ in alerted:
            assert sum(call_id in m for m in posted) == 1, call_id
        slack = [str(r.message) for r in p.slack.accepted()]
        assert all(sum(call_id in m for m in slack) == 1 for call_id, _ in alerted)
