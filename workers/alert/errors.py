"""Errors: what went wrong sending an alert to a channel, and what the outbox does about it, for every channel.

    ChannelError(reason)
    ├── ChannelRetry(delay_s, reason)   5xx, timeouts, connection errors: the retry schedule says when
    │   └── ChannelRateLimited          429: nothing goes to this channel for `delay_s` (Retry-After), from anyone
    └── ChannelPermanent(reason)        a 4xx that says the message or the address is wrong: dead-letter, never retry

The error's type decides retry or give-up (workers/alert/outbox.py reads only this tree), and the delay travels
with it. `from_status` is the one reading of a plain HTTP answer, used by the channels whose service says
everything with its status code (Teams' Workflows, PagerDuty); Slack's bot API also answers errors inside a
200 and reads them itself (workers/alert/slack.py), into the same tree (Slack's names are these classes).

`reason` is what the service said, clipped: it lands in logs and dead letters, so it never holds a URL, a key
or a token (the senders never put one there).
"""

from __future__ import annotations

import httpx

REASON_MAX = 200
# 408 and 425 say "too early / too slow", not "wrong": worth another try, as a 5xx is.
_RETRYABLE_4XX = frozenset({408, 425})


class ChannelError(Exception):
    """Base of the errors a channel's sender raises; `reason` is the service's own word for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChannelRetry(ChannelError):
    """Try again later: after `delay_s` when the service said so, else when the retry schedule says."""

    def __init__(self, delay_s: float | None, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class ChannelRateLimited(ChannelRetry):
    """429: nothing may be sent to this channel for `delay_s` seconds; no try is spent."""

    delay_s: float


class ChannelPermanent(ChannelError):
    """The service refused the message for good (malformed, gone address, revoked key)."""


def retry_after(headers: httpx.Headers, default: float = 1.0) -> float:
    """`Retry-After` in seconds (the delta form; an unreadable one counts as `default`)."""
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return default


def from_status(status: int, headers: httpx.Headers, reason: str) -> None:
    """Returns for a 2xx; raises what a 429, a 5xx or another 4xx means. `reason` says what the body said."""
    reason = (reason.strip() or f"http_{status}")[:REASON_MAX]
    if status == 429:
        raise ChannelRateLimited(retry_after(headers), reason)
    if status >= 500 or status in _RETRYABLE_4XX:
        raise ChannelRetry(retry_after(headers) if "retry-after" in headers else None, reason)
    if status >= 400 or status < 200:
        raise ChannelPermanent(reason)
    if status >= 300:  # a redirect is never followed: the URL is a secret, and a moved one is an operator's fix
        raise ChannelPermanent(f"http_{status}_redirect")


async def post_json(client: httpx.AsyncClient, url: str, body: object, headers: dict[str, str] | None = None
                    ) -> httpx.Response:
    """POSTs `body` as JSON; a timeout or a broken connection is a ChannelRetry that names no URL."""
    try:
        return await client.post(url, json=body, headers=headers or {})
    except httpx.TimeoutException as e:
        raise ChannelRetry(None, "timeout") from e
    except httpx.TransportError as e:
        raise ChannelRetry(None, f"transport_error:{type(e).__name__}") from e
