"""PagerDuty: alerts as Events API v2 events: a trigger per call and reason, a trigger and a resolve per incident.

    POST PAGERDUTY_URL (https://events.pagerduty.com/v2/enqueue)
      {"routing_key": <PAGERDUTY_ROUTING_KEY>, "event_action": "trigger", "dedup_key": ..., "payload": {
         "summary", "source", "severity", "timestamp", "class", "group", "custom_details"}, "links": [...]}
      {"routing_key": ..., "event_action": "resolve", "dedup_key": <the incident's>}

`dedup_key` is the alert's identity: `call_id:reason` for a call (a second trigger for it would only add to the
same PagerDuty alert; the outbox sends one anyway), the incident's id for a pipeline incident, so the resolve
sent when the incident ends (workers/alert/incidents.py) closes the very alert its trigger opened. A digest is one
trigger naming how many calls it stands for. PagerDuty answers 202 `{"status": "success", "dedup_key": ...}`;
400 `{"status": "invalid event", "errors": [...]}` is for good; 429 is retried after Retry-After when sent, else
after 30 s (PagerDuty's own advice: a few retries 30 s apart); 5xx on the schedule (workers/alert/errors.py).
Events are paced at 0.55 s per integration key, under its ~120 a minute.

The routing key is a secret: the rendered message has none (dead letters keep the message's alert, not the
message), the sender adds it to the body it posts, and the channel's key is a hash of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from workers.alert.card import card_for, digest_card
from workers.alert.channel import Channel
from workers.alert.errors import ChannelRateLimited, from_status, post_json
from workers.alert.rules import Alert, Message, clip

PAGERDUTY = "pagerduty"
URL = "https://events.pagerduty.com/v2/enqueue"
PACE_S = 0.55  # ~120 events a minute per integration key
SUMMARY_MAX, DEDUP_MAX, DETAIL_MAX = 1024, 255, 2000
THROTTLED_WAIT_S = 30.0
SOURCE = "wavix-events"


def dedup_key(alert: Alert) -> str:
    """One PagerDuty alert per call and reason, or per incident (its trigger and its resolve share it)."""
    return clip(alert.call_id if alert.incident else alert.key, DEDUP_MAX)


def _details(facts: Sequence[tuple[str, str]], text: str, quote: str, lines: Sequence[str]) -> dict[str, Any]:
    details: dict[str, Any] = {label: clip(value, 300) for label, value in facts}
    for label, value in (("Said", quote), ("Details", text)):
        if value:
            details[label] = clip(value, DETAIL_MAX)
    if lines:
        details["Calls"] = [clip(line, 200) for line in lines]
    return details


def render_pagerduty(alerts: Sequence[Alert]) -> Message:
    """The event for one alert (a resolve for an incident's end), or one trigger for a digest of many."""
    first = alerts[0]
    if len(alerts) == 1 and first.resolved:
        return {"event_action": "resolve", "dedup_key": dedup_key(first)}
    card = card_for(first) if len(alerts) == 1 else digest_card(alerts)
    key = dedup_key(first) if len(alerts) == 1 else clip(f"digest:{first.key}", DEDUP_MAX)
    payload: dict[str, Any] = {
        "summary": clip(card.title, SUMMARY_MAX), "source": SOURCE, "severity": card.severity,
        "timestamp": first.occurred_at, "class": first.reason if len(alerts) == 1 else "digest",
        "custom_details": _details(card.facts, card.text, card.quote, card.lines),
    }
    if first.account:
        payload["group"] = first.account
    event: dict[str, Any] = {"event_action": "trigger", "dedup_key": key, "payload": payload, "client": SOURCE}
    links = [{"href": url, "text": label} for label, url in card.links]
    if links:
        event["links"] = links
    return event


def _reason(response: httpx.Response) -> str:
    """PagerDuty's own words: `message` and the first of `errors` (which name fields, never their values)."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return ""
    if not isinstance(body, dict):
        return ""
    errors = body.get("errors") or []
    first = f": {errors[0]}" if isinstance(errors, list) and errors else ""
    return f"{body.get('message') or body.get('status') or ''}{first}"


class PagerDutySender:
    """The Events API v2 with one integration (routing) key."""

    def __init__(self, client: httpx.AsyncClient, routing_key: str, url: str = URL) -> None:
        self._client, self._routing_key, self._url = client, routing_key, url
        self._key = "pagerduty-" + hashlib.sha256(routing_key.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"PagerDutySender({self._key})"  # never the routing key

    @property
    def channel_key(self) -> str:
        return self._key

    async def send(self, message: Message) -> None:
        response = await post_json(self._client, self._url, {"routing_key": self._routing_key, **message})
        if response.status_code == 429 and "retry-after" not in response.headers:
            raise ChannelRateLimited(THROTTLED_WAIT_S, _reason(response) or "throttle event")
        from_status(response.status_code, response.headers, _reason(response))


def pagerduty_channel(client: httpx.AsyncClient, routing_key: str, *, url: str = URL,
                      pace_s: float = PACE_S) -> Channel:
    return Channel(PAGERDUTY, PagerDutySender(client, routing_key, url), render_pagerduty, pace_s=pace_s)
