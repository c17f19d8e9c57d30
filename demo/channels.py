"""The demo's other alert channels: Teams, PagerDuty and e-mail stand-ins, and what they received.

    Teams     sandbox/teams.py       failed calls' cards (a digest when many fail at once)
    PagerDuty sandbox/pagerduty.py   the pipeline's incidents: the run's reconciliation finds the webhooks the
                                     sandbox never sent, and the worker opens a `missed_webhooks` incident
    e-mail    sandbox/email.py       failed and machine-answered calls, through a real SMTP server (STARTTLS, login)

Slack keeps every call alert, as before. After the calls settle, `show` waits a few seconds for each stand-in to
have something and prints one of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from rich.console import Console
from rich.markup import escape

from sandbox import email as smtp
from sandbox import pagerduty as pd
from sandbox import teams
from sandbox.api import ASGIApp
from sandbox.server import Server

RULES = "failed=slack+teams+email,machine=slack+email,pipeline=pagerduty"  # Slack keeps what it had


@dataclass
class Channels:
    teams: teams.TeamsStandIn
    pagerduty: pd.PagerDutyStandIn
    smtp: smtp.SmtpStandIn
    env: dict[str, str]


@contextlib.asynccontextmanager
async def stand_ins() -> AsyncIterator[Channels]:
    """Serves the three stand-ins on loopback ports of this process for the run."""
    card, pager, relay = teams.TeamsStandIn(), pd.PagerDutyStandIn(), smtp.SmtpStandIn()
    teams_server, pager_server = Server(cast(ASGIApp, card)), Server(cast(ASGIApp, pager))
    try:
        teams_url, pager_url = await teams_server.start(), await pager_server.start()
        with smtp.serve(relay) as mail:
            yield Channels(card, pager, relay, {
                "TEAMS_WEBHOOK_URL": card.url(teams_url), "PAGERDUTY_ROUTING_KEY": pd.ROUTING_KEY,
                "PAGERDUTY_URL": pager_url + pd.PATH, "SMTP_URL": mail.url, "SMTP_CA_FILE": mail.ca_file,
                "ALERT_EMAIL_FROM": "wavix-events@example.com", "ALERT_EMAIL_TO": "calls-lead@example.com",
                "ALERT_RULES": RULES, "PIPELINE_FAILING_AFTER": "8"})  # checks every 2 s in the demo
    finally:
        await pager_server.close()
        await teams_server.close()


async def show(channels: Channels, console: Console, wait_s: float = 15.0) -> None:
    """Waits (at most `wait_s`) until each stand-in has a message, then prints one of each and the counts."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not (channels.teams.accepted() and channels.pagerduty.accepted()
                                               and channels.smtp.received):
        await asyncio.sleep(0.25)
    cards, events, mails = channels.teams.accepted(), channels.pagerduty.accepted(), channels.smtp.received
    console.print(f"[bold]Other channels:[/] Teams {len(cards)} card(s) · PagerDuty {len(events)} event(s), "
                  f"{len(channels.pagerduty.open_alerts())} open · e-mail {len(mails)} message(s)", highlight=False)
    if cards:
        console.print("[bold]Teams card:[/]\n" + escape(teams.render_text(cards[0].message)), highlight=False)
    if events:
        event = events[0].message
        summary = (event.get("payload") or {}).get("summary", "")
        console.print(f"[bold]PagerDuty {event['event_action']}:[/] {escape(summary)} "
                      f"(dedup_key {escape(event['dedup_key'])})", highlight=False)
    if mails:
        console.print(f"[bold]E-mail to {escape(', '.join(mails[0].recipients))}:[/] {escape(mails[0].subject)}",
                      highlight=False)
