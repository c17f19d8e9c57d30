"""Slack's transport: post one message through an incoming webhook or the bot API, and say what failed.

Transport errors are classified in one place (`classify`), into this tree:

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
from typing import Protocol

import httpx
import msgspec

from contract import logs
from workers.alert.rules import (
    Message,
)

log = logs.get("workers.alert.slack")

# Bot API errors worth another try; every other `ok: false` error is permanent.
_TRANSIENT_API = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
_REASON_MAX = 200


class SlackError(Exception):
    """Base of the errors a Slack transport raises; `reason` is Slack's own error string."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SlackRetry(SlackError):
    """Try again later: after `delay_s` when Slack said so, else after the caller's backoff."""

    def __init__(self, delay_s: float | None, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class SlackRateLimited(SlackRetry):
    """429: nothing may be sent to this channel for `delay_s` seconds."""

    delay_s: float


class SlackPermanent(SlackError):
    """Slack refused the message for good (bad payload, gone channel, revoked token)."""


class Posted(msgspec.Struct, frozen=True):
    """Where chat.postMessage put a message: the channel's id and the message's `ts` (its id in Slack)."""

    channel: str
    ts: str


class Sender(Protocol):
    """One Slack destination. `channel_key` names it in Redis keys and logs; it is never a secret.
    `send` returns where the message is when the transport says so (the bot API), else None."""

    @property
    def channel_key(self) -> str: ...

    async def send(self, message: Message) -> Posted | None: ...


def _retry_after(headers: httpx.Headers) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return 1.0


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
    reason = (error or body.decode("utf-8", "replace").strip() or f"http_{status}")[:_REASON_MAX]
    if status == 429:
        raise SlackRateLimited(_retry_after(headers) if "retry-after" in headers else 1.0, reason)
    if status >= 500:
        raise SlackRetry(None, reason)
    if status >= 400:
        raise SlackPermanent(reason)
    if not api:
        return  # an incoming webhook answers "ok" with a 2xx
    if error is None:
        raise SlackRetry(None, f"unreadable_answer_http_{status}")
    if error == "ratelimited":  # the bot API's own 429: the whole channel waits, as for a 429
        raise SlackRateLimited(_retry_after(headers) if "retry-after" in headers else 1.0, error)
    if error in _TRANSIENT_API:
        raise SlackRetry(_retry_after(headers) if "retry-after" in headers else None, error)
    if error:
        raise SlackPermanent(error)


async def _post(client: httpx.AsyncClient, url: str, message: Message, headers: dict[str, str], api: bool) -> bytes:
    try:
        response = await client.post(url, json=message, headers=headers)
    except httpx.TimeoutException as e:
        raise SlackRetry(None, "timeout") from e
    except httpx.TransportError as e:
        raise SlackRetry(None, f"transport_error:{type(e).__name__}") from e
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


