"""Alerts per account: an account's alerts in its own Slack channel, through an outbox of its own.

An account of the accounts file (contract/accounts.py) with `alert_channel` (posted with SLACK_BOT_TOKEN) or
`alert_webhook_env` (an incoming webhook's URL) gets an `Outbox`: its own sender and its own
`DeliveryPolicy` prefix (`{KEY_PREFIX}account:<name>:`), so its alerts are queued, paced (1/s per channel),
retried, threaded and dead-lettered exactly as the deployment's (workers/alert/outbox.py), apart from the
others: one account's busy or broken channel never holds another's alerts. Accounts without either keep using
SLACK_WEBHOOK_URL / SLACK_CHANNEL. Each outbox has one dispatcher task a worker (`AccountOutboxes`); a SIGHUP
reload of ACCOUNTS_FILE (workers/runtime/context.py) starts the new accounts' and stops those of accounts whose channel
changed or went, so a channel is set, moved or dropped without a restart; the others' dispatchers run on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

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


Dispatch = Callable[[Sender, DeliveryPolicy], Coroutine[Any, Any, None]]  # runs one outbox until the worker stops


class AccountOutboxes:
    """The accounts' own outboxes and their dispatcher tasks, as the accounts file says now."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient, policy: DeliveryPolicy, dispatch: Dispatch):
        self._settings, self._http, self._policy, self._dispatch = settings, http, policy, dispatch
        self.boxes: dict[str, Outbox] = {}
        self._said: dict[str, tuple[str, str]] = {}  # account -> (alert_channel, webhook URL) its box was made of
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, account: str) -> Outbox | None:
        return self.boxes.get(account)

    def apply(self, accounts: Accounts) -> None:
        """Makes the outboxes those of `accounts`: a dispatcher started for each new or changed channel, the
        one of a changed or removed channel cancelled (what it had queued waits under the account's prefix)."""
        said = {a.name: (a.alert_channel or "", a.alert_webhook_url or "") for a in accounts.all}
        fresh = outboxes(accounts, self._settings, self._http, self._policy)
        for name in [n for n in self._tasks if n not in fresh or said.get(n) != self._said.get(n)]:
            self._tasks.pop(name).cancel()
        for name, box in fresh.items():
            if name not in self._tasks:
                self._tasks[name] = asyncio.create_task(self._dispatch(box.sender, box.policy))
            else:
                fresh[name] = self.boxes[name]  # unchanged: the running dispatcher's own sender
        self.boxes, self._said = fresh, said

    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks.values())


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
