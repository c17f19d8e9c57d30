"""Teams: alerts as an Adaptive Card, posted to a Workflows (Power Automate) webhook URL.

    TEAMS_WEBHOOK_URL = https://<...>.logic.azure.com/workflows/<id>/triggers/manual/paths/invoke?...&sig=<secret>
                        (or *.environment.api.powerplatform.com): the flow "Post to a channel when a webhook
                        request is received", created from the channel's Workflows app

What is supported, and why: only Workflows. Microsoft retired the Office 365 connectors (the old incoming
webhooks, `*.webhook.office.com`): new ones cannot be made and existing ones stop posting; their MessageCard
format is not what a Workflows flow posts. A connector URL is refused when a role starts (contract/settings.py),
naming the fix. The flow takes `{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard>}]}` and answers 202 Accepted (it posts
afterwards: a flow that fails later is seen in its run history, not here); 429 with Retry-After when throttled;
a 4xx when the body is not what its trigger takes. The errors tree is workers/alert/errors.py's.

The card is the alert's Card (workers/alert/card.py): a title coloured by severity, the facts, what was said,
the summary or the incident's particulars, and buttons to the console's call page and the recording. Caller-made
text cannot make a link (`](` is broken apart); everything is clipped so a message stays far under Teams'
28 KB. The URL carries its own secret (`sig=`): it is never logged; the channel's key is a hash of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from workers.alert.card import Card, card_for, digest_card
from workers.alert.channel import Channel
from workers.alert.errors import from_status, post_json
from workers.alert.rules import Alert, Message, clip

TEAMS = "teams"
PACE_S = 1.05  # Teams throttles a webhook past a few requests a second, a channel's readers long before
MESSAGE_MAX = 28 * 1024  # Teams' limit for a message, in bytes
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
_COLOUR = {"critical": "Attention", "error": "Attention", "warning": "Warning", "info": "Default"}
_TITLE_MAX, _FACT_MAX, _TEXT_MAX, _QUOTE_MAX, _LINE_MAX = 200, 300, 2000, 1000, 200


def _plain(text: str, limit: int) -> str:
    """Caller-made text, clipped, that Teams' markdown cannot turn into a link."""
    return clip(text.replace("](", "] ("), limit)


def _block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text or " ", "wrap": True, **style}


def adaptive_card(card: Card) -> dict[str, Any]:
    """The card as an Adaptive Card 1.4 (what Teams shows on every client)."""
    colour = "Good" if card.title.startswith("Resolved") else _COLOUR[card.severity]
    body: list[dict[str, Any]] = [_block(_plain(card.title, _TITLE_MAX), size="Medium", weight="Bolder",
                                         color=colour)]
    if card.facts:
        body.append({"type": "FactSet", "facts": [{"title": label, "value": _plain(value, _FACT_MAX) or "—"}
                                                  for label, value in card.facts]})
    if card.quote:
        body.append({"type": "Container", "style": "emphasis", "items": [
            _block("Said", weight="Bolder", size="Small"), _block(_plain(card.quote, _QUOTE_MAX), isSubtle=False)]})
    if card.text:
        body.append(_block(_plain(card.text, _TEXT_MAX)))
    body.extend(_block(_plain(line, _LINE_MAX), spacing="None") for line in card.lines)
    if card.footer:
        body.append(_block(_plain(card.footer, _LINE_MAX), isSubtle=True, size="Small"))
    content: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                               "type": "AdaptiveCard", "version": "1.4", "msteams": {"width": "Full"}, "body": body}
    actions = [{"type": "Action.OpenUrl", "title": label, "url": url} for label, url in card.links if len(url) < 2000]
    if actions:
        content["actions"] = actions
    return content


def render_teams(alerts: Sequence[Alert]) -> Message:
    """One alert's card, or one digest card for many, as the message a Workflows flow takes."""
    card = card_for(alerts[0]) if len(alerts) == 1 else digest_card(alerts)
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE, "contentUrl": None,
                                                "content": adaptive_card(card)}]}


def _reason(response: httpx.Response) -> str:
    """A flow's error code (`{"error": {"code": ...}}`), never its message (which may quote the request)."""
    try:
        error = msgspec.json.decode(response.content).get("error") or {}
        return str(error.get("code") or "") if isinstance(error, dict) else ""
    except (msgspec.DecodeError, AttributeError):
        return ""


class TeamsSender:
    """A Workflows webhook: POST the message to the secret URL; the flow decides the team and channel."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client, self._url = client, url
        self._key = "teams-" + hashlib.sha256(url.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"TeamsSender({self._key})"  # never the URL: its `sig` is the credential

    @property
    def channel_key(self) -> str:
        return self._key

    async def send(self, message: Message) -> None:
        response = await post_json(self._client, self._url, message)
        from_status(response.status_code, response.headers, _reason(response))


def teams_channel(client: httpx.AsyncClient, url: str, *, pace_s: float = PACE_S) -> Channel:
    return Channel(TEAMS, TeamsSender(client, url), render_teams, pace_s=pace_s)
