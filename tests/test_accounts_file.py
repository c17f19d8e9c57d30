"""The accounts file (contract/accounts.py): what it accepts, the one-line errors naming its line, the token lookup."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from contract import accounts
from contract.accounts import DEFAULT, AccountsError, parse_accounts, token_digest
from contract.errors import SettingsError
from contract.intake import scoped
from contract.jobs import Receipt
from contract.settings import Settings
from contract.webhooks import Kind

ALPHA, BETA = "alpha-token-" + "a" * 20, "beta-token-" + "b" * 20
ENV = {"ALPHA_KEY": "key-a", "ALPHA_TOKEN": ALPHA, "BETA_TOKEN": f"old-beta-{'o' * 16}, {BETA}", "BETA_SLACK": "https://s"}
GOOD = f"""\
accounts:
  - name: alpha
    api_key_env: ALPHA_KEY
    token_env: ALPHA_TOKEN
  - name: beta
    sub_account: 123
    token_env: BETA_TOKEN
    api_url: https://eu.wavix.test
    reconcile: false
    transcripts: false
    alert_channel: "#beta"
    alert_webhook_env: BETA_SLACK
    max_in_flight: 4
  - name: gamma
    api_key_env: ALPHA_KEY
    token_sha256: [{hashlib.sha256(b"gamma-token-" + b"g" * 20).hexdigest()}]
    reconcile_interval: 10m
"""


def test_a_valid_file_gives_each_account_its_key_tokens_and_own_settings() -> None:
    """Every field is read: keys from the named variables, tokens as digests (rotation: several per account),
    run-time keys for `sub_account` alone, and the optional per-account settings."""
    loaded = parse_accounts(GOOD, ENV, master_key=True)
    assert loaded.names == ("alpha", "beta", "gamma")
    alpha, beta, gamma = loaded.all
    assert alpha.api_key == "key-a" and alpha.reconcile and alpha.transcripts and alpha.line == 2
    assert beta.key_at_run_time and beta.sub_account == 123 and beta.api_url == "https://eu.wavix.test"
    assert (beta.reconcile, beta.transcripts, beta.alert_channel, beta.max_in_flight) == (False, False, "#beta", 4)
    assert beta.alert_webhook_url == "https://s" and len(beta.token_digests) == 2
    assert gamma.reconcile_interval == 600
    assert loaded.for_token(ALPHA) is alpha and loaded.for_token(BETA) is beta
    assert loaded.for_token("gamma-token-" + "g" * 20) is gamma and loaded.for_token("nobody" * 4) is None
    assert "key-a" not in repr(alpha) and ALPHA not in repr(loaded.all)


def test_run_time_keys_fill_in_the_sub_accounts_only() -> None:
    """`with_keys` gives a `sub_account` account the key the master listing has for it; others keep theirs."""
    loaded = parse_accounts(GOOD, ENV, master_key=True).with_keys({123: "listed-key", 999: "other"})
    named = loaded.named("beta")
    assert named is not None and named.api_key == "listed-key"
    assert [a.api_key for a in loaded.all] == ["key-a", "listed-key", "key-a"]


def _error(text: str, env: dict[str, str] | None = None, master_key: bool = False) -> str:
    with pytest.raises(AccountsError) as caught:
        parse_accounts(text, ENV if env is None else env, master_key=master_key)
    message = str(caught.value)
    assert "\n" not in message and "key-a" not in message and ALPHA not in message
    return message


@pytest.mark.parametrize(("text", "expected"), [
    ("accounts: []\n", 'accounts.yaml:1: "accounts" must be a non-empty list'),
    ("accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n    tokn_env: ALPHA_TOKEN\n",
     'accounts.yaml:4: account "alpha": unknown field "tokn_env" (did you mean "token_env"?)'),
    ("accounts:\n  - name: alpha\n    api_key_env: NOPE\n    token_env: ALPHA_TOKEN\n",
     'accounts.yaml:3: account "alpha": api_key_env: environment variable NOPE is not set'),
    ("accounts:\n  - name: Alpha!\n    api_key_env: ALPHA_KEY\n    token_env: ALPHA_TOKEN\n",
     'accounts.yaml:2: account "Alpha!": name: lower-case letters'),
    ("accounts:\n  - name: alpha\n    token_env: ALPHA_TOKEN\n",
     'accounts.yaml:2: account "alpha": give "api_key_env"'),
    ("accounts:\n  - name: alpha\n    sub_account: 5\n    token_env: ALPHA_TOKEN\n",
     'accounts.yaml:3: account "alpha": sub_account without api_key_env needs WAVIX_MASTER_API_KEY'),
    ("accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n",
     'accounts.yaml:2: account "alpha": give "token_env"'),
    ("accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n    token_sha256: [abc]\n",
     'accounts.yaml:4: account "alpha": token_sha256: each must be 64 hex digits'),
    ("accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n    token_env: ALPHA_TOKEN\n    reconcile: maybe\n",
     'accounts.yaml:5: account "alpha": "reconcile" must be true or false'),
    ("accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n    token_env: ALPHA_TOKEN\n"
     "  - name: alpha\n    api_key_env: ALPHA_KEY\n    token_env: BETA_TOKEN\n",
     'accounts.yaml:5: account "alpha": name already used on line 2'),
    ("accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n    token_env: ALPHA_TOKEN\n"
     "  - name: beta\n    api_key_env: ALPHA_KEY\n    token_env: ALPHA_TOKEN\n",
     'accounts.yaml:5: account "beta": a token is also account "alpha"\'s (line 2): each token names one account'),
    ("accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n  token_env: x\n", "accounts.yaml:4: not valid YAML"),
])
def test_every_mistake_is_one_line_naming_the_line(text: str, expected: str) -> None:
    """A bad file is refused with one line that starts with `file:line:` and names the account and field, and
    never repeats a key or a token."""
    assert _error(text).startswith(expected)


def test_a_short_token_is_refused_like_webhook_tokens() -> None:
    """Tokens are at least 16 characters, as WEBHOOK_TOKENS."""
    text = "accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n    token_env: SHORT\n"
    assert "at least 16 characters" in _error(text, {**ENV, "SHORT": "short"})


def test_without_a_file_there_is_one_default_account_from_the_old_settings() -> None:
    """No ACCOUNTS_FILE: the `default` account, WEBHOOK_TOKENS and WAVIX_API_KEY: a deployment as before."""
    settings = Settings.from_env({"WEBHOOK_TOKENS": ALPHA, "WAVIX_API_KEY": "k"})
    loaded = accounts.from_settings(settings)
    assert loaded.names == (DEFAULT,) and loaded.all[0].api_key == "k"
    assert loaded.for_token(ALPHA) is loaded.all[0] and loaded.for_token(BETA) is None


def test_at_start_a_bad_file_is_a_settings_error_naming_accounts_file(tmp_path: Path) -> None:
    """The roles refuse to start on a bad file, with the file's own line in the message; a reconcile interval
    longer than the lookback is refused as RECONCILE_INTERVAL is."""
    path = tmp_path / "accounts.yaml"
    path.write_text("accounts:\n  - name: alpha\n    api_key_env: NOPE\n    token_env: ALPHA_TOKEN\n")
    with pytest.raises(SettingsError, match=r"ACCOUNTS_FILE: accounts.yaml:3: account \"alpha\""):
        accounts.at_start(Settings.from_env({"ACCOUNTS_FILE": str(path)}), ENV)
    path.write_text("accounts:\n  - name: alpha\n    api_key_env: ALPHA_KEY\n    token_env: ALPHA_TOKEN\n"
                    "    reconcile_interval: 3h\n")
    with pytest.raises(SettingsError, match="reconcile_interval must be shorter than RECONCILE_LOOKBACK"):
        accounts.at_start(Settings.from_env({"ACCOUNTS_FILE": str(path)}), ENV)
    with pytest.raises(SettingsError, match="cannot read the accounts file"):
        accounts.at_start(Settings.from_env({"ACCOUNTS_FILE": str(tmp_path / "none.yaml")}), ENV)


def test_call_keys_are_scoped_by_account_except_the_default_one() -> None:
    """The default account keeps the keys of a deployment without accounts; the others get their own, so one
    account's token can neither dedup nor queue another's call."""
    assert scoped(DEFAULT, "c-1") == "c-1" and scoped("alpha", "c-1") == "alpha/c-1"
    receipt = Receipt(kind=Kind.POST_CALL, call_id="c-1", event="answered", received_at_ms=0, body=b"{}")
    assert receipt.account == DEFAULT and receipt.key == "c-1"
    assert Receipt(kind=Kind.POST_CALL, call_id="c-1", event="", received_at_ms=0, body=b"", account="b").key == "b/c-1"
    assert token_digest(f" {ALPHA} ") == hashlib.sha256(ALPHA.encode()).hexdigest()


def test_settings_of_accounts_are_checked() -> None:
    """ACCOUNT_KEYS_REFRESH is positive, ACCOUNT_MAX_IN_FLIGHT 0 or more."""
    with pytest.raises(SettingsError, match="ACCOUNT_KEYS_REFRESH"):
        Settings.from_env({"ACCOUNT_KEYS_REFRESH": "0"})
    with pytest.raises(SettingsError, match="ACCOUNT_MAX_IN_FLIGHT"):
        Settings.from_env({"ACCOUNT_MAX_IN_FLIGHT": "-1"})
