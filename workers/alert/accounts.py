"""Alerts per account: an account's alerts in its own Slack channel, through an outbox of its own.

An account of the accounts file (contract/accounts.py) with `alert_channel` (posted with SLACK_BOT_TOKEN) or
`alert_webhook_env` (an incoming webhook's URL) gets an `Outbox`: its own sender and its own
`DeliveryPolicy` prefix (`{KEY_PREFIX}account:<name>:`), so its alerts are queued, paced (1/s per channel),
retried, threaded and dead-lettered exactly as the deployment's (workers/alert/outbox.py), apart from the
others: one account's busy or broken channel never holds another's alerts. Accounts without either keep using
SLACK_WEBHOOK_URL / SLACK_CHANNEL. The outboxes are built when a worker starts (a reload does not change them).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import msgspec

from contract import logs
from contract.accounts import Accounts
from contract.settings import Settings
from workers.alert.rules import DeliveryPolicy
from workers.alert.slack import Sender, sender_for

log = logs.get("workers.alert.accounts")


@dataclass(frozen=True)
class Outbox:
    """Where one account's alerts go, and the policy (its own key prefix) they are queued under."""

    sender: Sender
    policy: DeliveryPolicy


def outboxes(accounts: Accounts, settings: Settings, http: httpx.AsyncClient,
             policy: DeliveryPolicy) -> dict[str, Outbox]:
    """The accounts that name a channel of their own -> their outbox."""
    found: dict[str, Outbox] = {}
    for account in accounts.all:
        if not account.alert_channel and not account.alert_webhook_url:
            continue
        bot = bool(account.alert_channel and settings.slack_bot_token)
        sender = sender_for(http, webhook_url="" if bot else account.alert_webhook_url or "",
                            bot_token=settings.slack_bot_token if bot else "",
                            channel=account.alert_channel or "" if bot else "", api_url=settings.slack_api_url)
        if sender is None:
            log.warning("alert.account_channel_unusable", account=account.name,
                        why="alert_channel needs SLACK_BOT_TOKEN: its alerts go to the deployment's channel")
            continue
        prefix = f"{settings.key_prefix}account:{account.name}:"
        found[account.name] = Outbox(sender, msgspec.structs.replace(policy, prefix=prefix))
    return found
