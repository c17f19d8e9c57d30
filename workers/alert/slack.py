"""Slack's transport: post one message through an incoming webhook or the bot API, and say what failed.

Transport errors are classified in one place (`classify`), into the tree every channel shares
(workers/alert/errors.py; Slack's names are kept as its aliases):

    SlackError
    ├── SlackRetry(delay_s, reason)   5xx, rollup_error, timeouts, connection errors: back off and retry
    │   └── SlackRateLimited          429 or `ratelimited`: the whole channel waits `Retry-After` seconds
    └── SlackPermanent(reason)        400/403/404/410, `ok: false` errors: dead-letter, never retry

`BotSender.send` returns where the message landed (`Posted`: the channel's id and the message's `ts`), so
the call's transcript can later be replied in its thread (workers/alert/notes.py). An incoming webhook
answers a plain `ok`, with no `ts`: its messages cannot be found again, so they get no replies.

Pacing, grouping and never losing an alert are workers/alert/outbox.py's. The webhook URL and bot token are
secrets: they are never logged nor put into an error's text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from contract import logs
from workers.alert.card import Card, card_for
from workers.alert.channel import SLACK, Channel
from workers.alert.channel import Posted as Posted  # Slack's Posted and Sender, where they always were
from workers.alert.channel import Sender as Sender
from workers.alert.errors import (
    REASON_MAX,
    ChannelError,
    ChannelPermanent,
    ChannelRateLimited,
    ChannelRetry,
    post_json,
    retry_after,
)
from workers.alert.rules import (
    CALL_REASONS,
    FIELD_MAX,
    HEADER_MAX,
    Alert,
    Message,
    clip,
    escape,
    render_alert,
    render_digest,
)

log = logs.get("workers.alert.slack")

# Bot API errors worth another try; every other `ok: false` error is permanent.
_TRANSIENT_API = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


# Slack's names for the shared tree (workers/alert/errors.py): the outbox reads only that tree.
SlackError = ChannelError
SlackRetry = ChannelRetry
SlackRateLimited = ChannelRateLimited
SlackPermanent = ChannelPermanent


def _api_error(body: bytes) -> str | None:
    """The `error` of a bot API answer, "" when it says ok, None when it is not Slack's JSON."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(data, dict):
        return None
    return "" if data.get("ok") is True else str(data.get("error") or "unknown_error")


def classify(status: int, headers: httpx.Headers, body: bytes, *, api: bool) -> None:
    """Returns when Slack accepted the message; raises the SlackError that says what to do otherwise."""
    error = _api_error(body) if api else None
    reason = (error or body.decode("utf-8", "replace").strip() or f"http_{status}")[:REASON_MAX]
    if status == 429:
        raise SlackRateLimited(retry_after(headers), reason)
    if status >= 500:
        raise SlackRetry(None, reason)
    if status >= 400:
        raise SlackPermanent(reason)
    if not api:
        return  # an incoming webhook answers "ok" with a 2xx
    if error is None:
        raise SlackRetry(None, f"unreadable_answer_http_{status}")
    if error == "ratelimited":  # the bot API's own 429: the whole channel waits, as for a 429
        raise SlackRateLimited(retry_after(headers), error)
    if error in _TRANSIENT_API:
        raise SlackRetry(retry_after(headers) if "retry-after" in headers else None, error)
    if error:
        raise SlackPermanent(error)


async def _post(client: httpx.AsyncClient, url: str, message: Message, headers: dict[str, str], api: bool) -> bytes:
    response = await post_json(client, url, message, headers)
    classify(response.status_code, response.headers, response.content, api=api)
    return response.content


_decode_posted = msgspec.json.Decoder(Posted).decode


class WebhookSender:
    """Incoming webhook: POST the message to the secret URL; the channel is fixed by the URL."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url
        self._key = "webhook-" + hashlib.sha256(url.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"WebhookSender({self._key})"  # never the URL: its path is the credential

    @property
    def channel_key(self) -> str:
        return self._key

    async def send(self, message: Message) -> None:
        await _post(self._client, self._url, message, {}, api=False)
        return None  # "ok" is all a webhook says: no ts, so no thread to reply in later


class BotSender:
    """Bot API: `chat.postMessage` with a bearer token to one channel (or the one a message names:
    a thread reply goes to the channel id Slack returned for its parent)."""

    def __init__(self, client: httpx.AsyncClient, api_url: str, token: str, channel: str) -> None:
        self._client = client
        self._url = api_url.rstrip("/") + "/chat.postMessage"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._channel = channel

    def __repr__(self) -> str:
        return f"BotSender({self._channel})"

    @property
    def channel_key(self) -> str:
        return self._channel

    async def send(self, message: Message) -> Posted | None:
        body = await _post(self._client, self._url, {"channel": self._channel, **message}, self._headers, api=True)
        try:
            return _decode_posted(body)
        except msgspec.ValidationError:  # ok, but no channel or ts: delivered all the same, just not threadable
            log.warning("slack.no_ts", channel=self._channel)
            return None


def can_thread(sender: Sender | None) -> bool:
    """Whether this sender's messages can be replied to later: only the bot API says where they are."""
    return isinstance(sender, BotSender)


def _slack_card(card: Card) -> Message:
    """Block Kit for the alerts that are not a call's outcome (what was said, an incident), from their card."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                                 "text": clip(card.title, HEADER_MAX) or " "}}]
    if card.facts:
        fields = [{"type": "mrkdwn", "text": clip(f"*{label}*\n{escape(value)}", FIELD_MAX)}
                  for label, value in card.facts[:10]]
        blocks.append({"type": "section", "fields": fields})
    for label, text in (("Said", card.quote), ("", card.text)):
        if text:
            body = (f"*{label}*\n> " if label else "") + escape(text).replace("\n", "\n> " if label else "\n")
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(body, 2900)}})
    links = [f"<{url}|{label}>" for label, url in card.links if len(url) < 2000 and "|" not in url and ">" not in url]
    footer = " · ".join([escape(card.footer), *links])
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(footer, 2000) or " "}]})
    return {"text": clip(escape(card.title), 500), "blocks": blocks}


def render_slack(alerts: Sequence[Alert]) -> Message:
    """Slack's look: a call's outcome as it always was, the other kinds from their card, many as one digest."""
    if len(alerts) > 1:
        return render_digest(list(alerts))
    alert = alerts[0]
    return render_alert(alert) if alert.reason in CALL_REASONS else _slack_card(card_for(alert))


def slack_channel(sender: Sender) -> Channel:
    """Slack as a channel of the outbox (workers/alert/channel.py): Block Kit, the policy's pace, threads with
    the bot API. A bare Sender handed to the outbox is taken to be this."""
    return Channel(SLACK, sender, render_slack, threads=can_thread(sender))


def sender_for(
    client: httpx.AsyncClient,
    *,
    webhook_url: str = "",
    bot_token: str = "",
    channel: str = "",
    api_url: str = "https://slack.com/api",
) -> Sender | None:
    """The bot API when a token and channel are set, else the incoming webhook, else None (no alerts).

    Pass the SLACK_* settings: `sender_for(client, webhook_url=s.slack_webhook_url, ...)`.
    """
    if bot_token and channel:
        return BotSender(client, api_url, bot_token, channel)
    return WebhookSender(client, webhook_url) if webhook_url else None


