"""Two Wavix accounts in one deployment, for the tests of what shows, filters and erases by account (issue #26).

`alpha` is the sandbox's master account, `beta` one of its sub-accounts; both are in an accounts file with their
own key and token, so each call comes in through its account's token and is fetched with its account's key by
the real receiver and worker (tests/pipeline.py). tests/test_accounts_e2e.py is the whole story (discovery,
outages, alerts); this is the smallest deployment that has calls of two accounts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.accounts import MASTER
from sandbox.calls import SimCall
from sandbox.config import SandboxConfig, SubAccountConfig
from sandbox.webhooks import send_webhooks
from tests.pipeline import Pipeline, pipeline

ALPHA_KEY, BETA_KEY = "alpha-key-" + "a" * 16, "beta-key-" + "b" * 16
TOKENS = {"alpha": "alpha-token-" + "a" * 24, "beta": "beta-token-" + "b" * 24}
IDS = {"alpha": MASTER, "beta": 21}
FILE = """\
accounts:
  - name: alpha
    api_key_env: TWO_ALPHA_KEY
    token_env: TWO_ALPHA_TOKEN
  - name: beta
    api_key_env: TWO_BETA_KEY
    token_env: TWO_BETA_TOKEN
"""


@dataclass
class TwoAccounts:
    p: Pipeline
    accounts_file: Path

    async def send(self, name: str, count: int) -> list[SimCall]:
        """`count` new calls of account `name`, their webhooks posted with that account's token."""
        calls = self.p.sandbox.place(count, account=IDS[name])
        results = await send_webhooks(calls, f"/webhooks/wavix/{TOKENS[name]}", client=self.p.receiver,
                                      on_first_send=self.p.sandbox.mark_sent, rate=500.0)
        assert all(r.status == 200 for r in results), [(r.status, r.answer) for r in results if r.status != 200]
        return calls


@asynccontextmanager
async def two_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, seed: int = 26,
                       **env: str) -> AsyncIterator[TwoAccounts]:
    """A pipeline serving alpha and beta (`env`: more settings, e.g. SINKS_CONFIG)."""
    for name, value in {"TWO_ALPHA_KEY": ALPHA_KEY, "TWO_BETA_KEY": BETA_KEY, "TWO_ALPHA_TOKEN": TOKENS["alpha"],
                        "TWO_BETA_TOKEN": TOKENS["beta"]}.items():
        monkeypatch.setenv(name, value)
    accounts_file = tmp_path / "accounts.yaml"
    accounts_file.write_text(FILE)
    config = SandboxConfig(api_key=ALPHA_KEY, seed=seed, transcript_share=0.0,
                           sub_accounts=(SubAccountConfig(id=IDS["beta"], name="Beta", api_key=BETA_KEY),))
    async with pipeline(config, ACCOUNTS_FILE=str(accounts_file), **env) as p:
        yield TwoAccounts(p, accounts_file)
