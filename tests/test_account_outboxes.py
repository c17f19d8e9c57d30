"""Accounts' own alert channels follow ACCOUNTS_FILE reloads (workers/alert/accounts.py `AccountOutboxes`):
a new account's channel gets a dispatcher, a moved or dropped one's dispatcher stops, the others' run on."""

from __future__ import annotations

import asyncio

import httpx

from contract.accounts import parse_accounts
from contract.settings import Settings
from tests.conftest import REDIS_URL
from workers.alert.accounts import AccountOutboxes
from workers.alert.rules import DeliveryPolicy
from workers.alert.slack import Sender

ENV = {"KEY": "k" * 20, "A_TOKEN": "a" * 32, "B_TOKEN": "b" * 32, "C_TOKEN": "c" * 32,
       "A_HOOK": "http://127.0.0.1:9/services/A", "B_HOOK": "http://127.0.0.1:9/services/B",
       "B_HOOK_2": "http://127.0.0.1:9/services/B2"}


def accounts_file(*lines: tuple[str, str]) -> str:
    """`(name, alert_webhook_env or "")` each -> the accounts file's text."""
    text = "accounts:\n"
    for name, hook in lines:
        text += f"  - name: {name}\n    api_key_env: KEY\n    token_env: {name.upper()}_TOKEN\n"
        text += f"    alert_webhook_env: {hook}\n" if hook else ""
    return text


async def test_a_reload_starts_new_channels_stops_moved_and_dropped_ones_and_keeps_the_rest() -> None:
    running: list[str] = []
    stopped: list[str] = []

    async def dispatch(sender: Sender, policy: DeliveryPolicy) -> None:
        running.append(policy.prefix)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.append(policy.prefix)
            raise

    settings = Settings.from_env({"REDIS_URL": REDIS_URL, "KEY_PREFIX": "t:"})
    async with httpx.AsyncClient() as http:
        boxes = AccountOutboxes(settings, http, DeliveryPolicy(), dispatch)
        boxes.apply(parse_accounts(accounts_file(("a", "A_HOOK"), ("b", "B_HOOK"), ("c", "")), ENV))
        await asyncio.sleep(0)  # the dispatchers' first step
        assert sorted(running) == ["t:account:a:", "t:account:b:"] and boxes.get("c") is None, "c names none"
        first_a, first_b = boxes.get("a"), boxes.get("b")

        boxes.apply(parse_accounts(accounts_file(("a", "A_HOOK"), ("b", "B_HOOK_2"), ("c", "A_HOOK")), ENV))
        await asyncio.sleep(0)
        assert stopped == ["t:account:b:"], "b's channel moved: its old dispatcher stops"
        assert boxes.get("a") is first_a, "a's channel is unchanged: its box and dispatcher stay"
        assert boxes.get("b") is not first_b and boxes.get("c") is not None
        assert len(boxes.tasks()) == 3 and all(not t.done() for t in boxes.tasks())

        boxes.apply(parse_accounts(accounts_file(("a", "A_HOOK")), ENV))
        await asyncio.sleep(0)
        assert sorted(stopped) == ["t:account:b:", "t:account:b:", "t:account:c:"]
        assert [boxes.get(n) is None for n in "abc"] == [False, True, True] and len(boxes.tasks()) == 1
        for task in boxes.tasks():
            task.cancel()
