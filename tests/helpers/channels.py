"""Each alert channel with its stand-in, behind one face, for the channels' conformance suite.

A `Harness` serves the channel's stand-in (sandbox/teams.py, sandbox/pagerduty.py, a real SMTP server for
e-mail) on loopback, builds the channel as a worker would, and says what arrived: `delivered()` is the accepted
messages as text, `throttle(n)` makes the next n requests answer the service's rate limit (429 with Retry-After,
SMTP's 421), `refuse()` makes the next one answer the service's "malformed" (a 4xx, SMTP's 5xx). The suite
(tests/test_alert_channels.py) runs the same tests against every harness.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import msgspec

from sandbox import email as smtp
from sandbox import pagerduty as pd
from sandbox.teams import TeamsStandIn, error, serve, throttled
from workers.alert.channel import Channel
from workers.alert.email import email_channel, relay_of
from workers.alert.pagerduty import pagerduty_channel
from workers.alert.teams import teams_channel


class Harness(Protocol):
    name: str
    channel: Channel
    secret: str  # what must never appear in a log line or a dead letter

    def delivered(self) -> list[str]: ...

    def attempts(self) -> int: ...

    def throttle(self, n: int, retry_after: int = 1) -> None: ...

    def refuse(self) -> None: ...


@dataclass
class TeamsHarness:
    standin: TeamsStandIn
    channel: Channel
    secret: str
    name: str = "teams"

    def delivered(self) -> list[str]:
        return [msgspec.json.encode(r.message).decode() for r in self.standin.accepted()]

    def attempts(self) -> int:
        return len(self.standin.received)

    def throttle(self, n: int, retry_after: int = 1) -> None:
        self.standin.script(*[throttled(retry_after)] * n)

    def refuse(self) -> None:
        self.standin.script(error(400, "TriggerInputSchemaMismatch", "the body is not what the trigger takes"))


@contextlib.asynccontextmanager
async def teams(pace_s: float = 0.05) -> AsyncIterator[TeamsHarness]:
    standin = TeamsStandIn(min_interval_s=pace_s)
    async with serve(standin) as base, httpx.AsyncClient(timeout=5.0) as http:
        yield TeamsHarness(standin, teams_channel(http, standin.url(base), pace_s=pace_s), standin.sig)


@dataclass
class PagerDutyHarness:
    standin: pd.PagerDutyStandIn
    channel: Channel
    secret: str
    name: str = "pagerduty"

    def delivered(self) -> list[str]:
        return [msgspec.json.encode(r.message).decode() for r in self.standin.accepted()]

    def attempts(self) -> int:
        return len(self.standin.received)

    def throttle(self, n: int, retry_after: int = 1) -> None:
        self.standin.script(*[pd.throttled(retry_after)] * n)

    def refuse(self) -> None:
        self.standin.script(pd.invalid("'payload.summary' is missing or blank"))


@contextlib.asynccontextmanager
async def pagerduty(pace_s: float = 0.05) -> AsyncIterator[PagerDutyHarness]:
    standin = pd.PagerDutyStandIn(min_interval_s=pace_s)
    async with serve(standin) as base, httpx.AsyncClient(timeout=5.0) as http:
        channel = pagerduty_channel(http, pd.ROUTING_KEY, url=base + pd.PATH, pace_s=pace_s)
        yield PagerDutyHarness(standin, channel, pd.ROUTING_KEY)


@dataclass
class EmailHarness:
    standin: smtp.SmtpStandIn
    channel: Channel
    secret: str
    name: str = "email"

    def delivered(self) -> list[str]:
        return [f"{mail.subject}\n{mail.text()}" for mail in self.standin.received]

    def attempts(self) -> int:
        return len(self.standin.answers)

    def throttle(self, n: int, retry_after: int = 1) -> None:
        self.standin.script(*["421 4.7.0 Too many messages, slow down"] * n)

    def refuse(self) -> None:
        self.standin.script("554 5.6.0 Message content rejected")


@contextlib.asynccontextmanager
async def email(pace_s: float = 0.05) -> AsyncIterator[EmailHarness]:
    standin = smtp.SmtpStandIn()
    with smtp.serve(standin) as address:
        channel = email_channel(relay_of(address.url, address.ca_file), "alerts@example.com",
                                ["oncall@example.com", "lead@example.com"], pace_s=pace_s, throttle_wait_s=1.0)
        yield EmailHarness(standin, channel, smtp.PASSWORD)


HARNESSES: dict[str, Any] = {"teams": teams, "pagerduty": pagerduty, "email": email}
