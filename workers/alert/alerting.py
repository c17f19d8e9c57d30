"""Alerting: which alerts a worker raises and where each goes, for every channel but Slack's own wiring.

    process_call ──> Resources.alert ──> Alerting.call ──> routes (contract/alerting.py) ──> queue_alert(channel=)
    fetch_transcript ─> Resources.alert_transcript ─> Alerting.transcript ─> keywords.py ──> queue_alert(channel=)
    incidents.py (the pipeline's own) ───────────────> Alerting.incident ──> routes ──────> queue_alert(channel=)
                                         one outbox per channel, run here: dispatch ──> Teams, PagerDuty, e-mail

Slack keeps its wiring in workers/runtime/context.py (its sender, an account's own Slack channel, the transcript replies
in its threads); it asks `for_slack` which of a call's reasons the rules send it, and the alerts of the other
kinds routed to `slack` are queued here into the deployment's Slack outbox. Alerts follow ALERT_REDACT before
they are formed, on every channel, as Slack's always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from redis.asyncio import Redis

from contract import logs
from contract.alerting import CALL_REASONS, DEFAULT_CHANNELS, AlertsFile, Route
from contract.events import CallCompletedEvent, CallTranscribedEvent
from contract.privacy import RedactKey, redact_event
from contract.settings import Settings
from workers.alert.channel import SLACK, Channel
from workers.alert.email import email_channel, relay_of
from workers.alert.keywords import Hit, hits
from workers.alert.outbox import queue_alert, run_dispatcher
from workers.alert.pagerduty import pagerduty_channel
from workers.alert.rules import Alert, DeliveryPolicy
from workers.alert.teams import teams_channel

log = logs.get("workers.alert.alerting")
E = TypeVar("E", CallCompletedEvent, CallTranscribedEvent)


def alert_for(event: CallCompletedEvent, reason: str, *, console_url: str = "") -> Alert:
    """The alert of one of a call's reasons (already redacted as ALERT_REDACT says)."""
    data = event.data
    return Alert(
        call_id=data.call_id,
        reason=reason,
        occurred_at=event.time.isoformat(),
        from_number=data.from_.number or "",
        to_number=data.to.number or "",
        direction=data.direction,
        disposition=data.disposition or "",
        answered_by=data.answered_by,
        duration_s=str(data.duration_s or 0),
        cost=str(data.charge or 0),
        destination=data.destination or "",
        recording_url=data.recording_url,
        account=_account(event),
        link=call_link(console_url, data.call_id),
    )


def keyword_alert(event: CallTranscribedEvent, hit: Hit, *, console_url: str = "") -> Alert:
    """The alert of a keyword rule heard on a call: who said what, quoted, and the call's page."""
    data = event.data
    return Alert(call_id=data.call_id, reason=f"keyword:{hit.rule}", occurred_at=event.time.isoformat(),
                 from_number=data.from_.number or "", to_number=data.to.number or "", direction=data.direction,
                 summary=data.summary, quote=hit.quote, speaker=hit.speaker or None, account=_account(event),
                 link=call_link(console_url, data.call_id))


def call_link(console_url: str, call_id: str) -> str | None:
    """The console's page of the call (CONSOLE_URL), None without one."""
    return f"{console_url.rstrip('/')}/calls/{call_id}" if console_url else None


def _account(event: object) -> str:
    return str(getattr(event, "account", "") or "")  # the call's account (issue #26), "" before accounts


def channels_from_settings(settings: Settings, http: httpx.AsyncClient) -> dict[str, Channel]:
    """The channels other than Slack whose settings are given."""
    channels: dict[str, Channel] = {}
    if settings.teams_webhook_url:
        channels["teams"] = teams_channel(http, settings.teams_webhook_url)
    if settings.pagerduty_routing_key:
        channels["pagerduty"] = pagerduty_channel(http, settings.pagerduty_routing_key, url=settings.pagerduty_url)
    if settings.smtp_url:
        channels["email"] = email_channel(relay_of(settings.smtp_url, settings.smtp_ca_file),
                                          settings.alert_email_from, settings.alert_email_to)
    return channels


@dataclass
class Alerting:
    """The rules (per account), the keyword rules and the channels of one worker process (built at startup)."""

    config: AlertsFile
    channels: dict[str, Channel]  # Slack's is not here: workers/runtime/context.py sends to it
    policy: DeliveryPolicy
    slack: bool = False  # a Slack channel is configured (the deployment's)
    console_url: str = ""
    redact_key: RedactKey | None = None
    settings: Settings | None = None

    def channels_for(self, reason: str, account: str = "") -> tuple[str, ...]:
        """The channels the rules (the account's, else the deployment's) send `reason` to; a bare rule: the
        default channels that are configured."""
        names: list[str] = []
        for route in self.config.routes(account):
            if route.matches(reason):
                names.extend(route.channels or [c for c in DEFAULT_CHANNELS if self.configured(c)])
        return tuple(dict.fromkeys(names))

    def configured(self, name: str) -> bool:
        return name in self.channels or (name == SLACK and self.slack)

    def for_slack(self, event: CallCompletedEvent) -> list[str]:
        """Which of a call's reasons go to Slack (workers/runtime/context.py sends them there)."""
        account = _account(event)
        return [reason for reason in event.data.alert_reasons if SLACK in self.channels_for(reason, account)]

    def _redacted(self, event: E) -> E:
        if self.settings is None:
            return event
        return redact_event(event, self.settings.alert_redaction(), self.redact_key)  # ALERT_REDACT

    async def queue(self, redis: Redis, alert: Alert, names: Iterable[str]) -> list[str]:
        """Queues `alert` once into each named channel's outbox (Slack's too, the deployment's); the names it
        was new to."""
        queued = []
        for name in names:
            if not self.configured(name):
                continue
            if await queue_alert(redis, alert, policy=self.policy, channel=name):
                queued.append(name)
        return queued

    async def call(self, redis: Redis, event: CallCompletedEvent) -> None:
        """A call's reasons, to the channels other than Slack that the rules name."""
        if not self.channels or not event.data.alert_reasons:
            return
        event = self._redacted(event)
        for reason in event.data.alert_reasons:
            names = [name for name in self.channels_for(reason, _account(event)) if name != SLACK]
            if names:
                await self.queue(redis, alert_for(event, reason, console_url=self.console_url), names)

    async def transcript(self, redis: Redis, event: CallTranscribedEvent) -> None:
        """What was said: one alert per keyword rule heard on the call, to every channel its rule routes to
        (Slack's too), after ALERT_REDACT (a dropped transcript hears nothing; scrubbed numbers stay scrubbed)."""
        if not self.config.keywords:
            return
        event = self._redacted(event)
        for hit in hits(event, self.config.keywords):
            names = self.channels_for(f"keyword:{hit.rule}", _account(event))
            if names:
                await self.queue(redis, keyword_alert(event, hit, console_url=self.console_url), names)

    def dispatchers(self, redis: Redis, *, stop: asyncio.Event, digest_threshold: int,
                    dead_letter_stream: str) -> list[asyncio.Task[None]]:
        """One background dispatcher per channel (the Redis gate keeps each channel's pace across workers)."""
        return [asyncio.create_task(run_dispatcher(redis, channel, stop=stop, digest_threshold=digest_threshold,
                                                   dead_letter_stream=dead_letter_stream, policy=self.policy))
                for channel in self.channels.values()]


def slack_only(policy: DeliveryPolicy | None = None) -> Alerting:
    """Every call reason to Slack alone, as before the other channels (until a worker's startup builds its own)."""
    return Alerting(config=AlertsFile(rules=tuple(Route(reason) for reason in CALL_REASONS)), channels={},
                    policy=policy or DeliveryPolicy(), slack=True)


def from_settings(settings: Settings, http: httpx.AsyncClient, policy: DeliveryPolicy, *, slack: bool,
                  redact_key: RedactKey | None = None) -> Alerting:
    """The worker's alerting, from settings already checked (contract/settings.py)."""
    return Alerting(config=settings.alerting(), channels=channels_from_settings(settings, http), policy=policy,
                    slack=slack, console_url=settings.console_url, redact_key=redact_key, settings=settings)
