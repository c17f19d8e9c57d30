"""Rules that route: ALERT_RULES and the alerts file say which alerts go to which channel, per account.

Pure tests of contract/alerting.py and workers/alert/alerting.py's choice of channels; each error is one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.alerting import AlertsFile, RulesError, configuration, parse_file, parse_routes
from contract.errors import SettingsError
from contract.settings import Settings
from workers.alert.alerting import Alerting
from workers.alert.rules import DeliveryPolicy

TEAMS = "https://prod-01.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=x"


def alerting(config: AlertsFile, *channels: str) -> Alerting:
    return Alerting(config=config, channels=dict.fromkeys(channels, None), policy=DeliveryPolicy(),  # type: ignore[arg-type]
                    slack=True)


@pytest.mark.parametrize(
    ("rules", "reason", "account", "expected"),
    [
        ("failed,machine", "failed", "", ("slack", "teams", "email")),
        ("failed,machine", "busy", "", ()),
        ("failed=teams", "failed", "", ("teams",)),
        ("failed=slack+pagerduty,failed=teams", "failed", "", ("slack", "pagerduty", "teams")),
        ("keyword=teams", "keyword:cancel", "", ("teams",)),
        ("keyword:lawyer=pagerduty", "keyword:cancel", "", ()),
        ("pipeline=pagerduty", "pipeline:destination_failing", "", ("pagerduty",)),
        ("pipeline:dead_letters=email", "pipeline:destination_failing", "", ()),
        ("failed=teams", "failed", "acme", ("email",)),  # acme's own rules, in the file below
        ("failed=teams", "failed", "other", ("teams",)),
    ],
)
def test_rules_choose_the_channels(rules: str, reason: str, account: str, expected: tuple[str, ...]) -> None:
    """A bare rule goes to the configured default channels (never PagerDuty); named channels in the order
    named; a family rule (`keyword`, `pipeline`) covers its members; an account with rules of its own follows
    those instead of the deployment's."""
    config = AlertsFile(rules=parse_routes(rules.split(","), ["cancel", "lawyer"]),
                        accounts={"acme": parse_routes(["failed=email"])})
    assert alerting(config, "teams", "pagerduty", "email").channels_for(reason, account) == expected


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({"ALERT_RULES": "failed,machnie"}, "ALERT_RULES", "unknown rule machnie"),
        ({"ALERT_RULES": "failed="}, "ALERT_RULES", "name at least one channel"),
        ({"ALERT_RULES": "failed=sms"}, "ALERT_RULES", "unknown channel sms"),
        ({"ALERT_RULES": "keyword:cancel=slack"}, "ALERT_RULES", "no keyword rule 'cancel'"),
        ({"ALERT_RULES": "pipeline:fire"}, "ALERT_RULES", "unknown rule pipeline:fire"),
        ({"ALERT_KEYWORDS": "cancel"}, "ALERT_KEYWORDS", "NAME:word|phrase"),
        ({"ALERT_KEYWORDS": "Cancel!:cancel"}, "ALERT_KEYWORDS", "lowercase"),
        ({"ALERT_KEYWORDS": "cancel@boss:cancel"}, "ALERT_KEYWORDS", "caller or callee"),
        ({"ALERT_KEYWORDS": "cancel:cancel||stop"}, "ALERT_KEYWORDS", "must have text"),
        ({"ALERT_KEYWORDS": "many:" + "|".join(f"w{i}" for i in range(21))}, "ALERT_KEYWORDS", "at most 20"),
        ({"ALERT_KEYWORDS": "cancel:cancel"}, "ALERT_RULES", "no rule routes them"),
    ],
)
def test_bad_rules_are_one_line_naming_the_variable(env: dict[str, str], variable: str, words: str) -> None:
    """Every mistake in ALERT_RULES or ALERT_KEYWORDS stops a role at start, in one line naming the variable."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable and words in str(caught.value) and "\n" not in str(caught.value)


GOOD = """
rules: [failed=slack+teams, keyword=teams, pipeline=slack]
keywords:
  cancel: {words: [cancel, close my account], speaker: caller}
  rival: {words: [Acme Telecom]}
accounts:
  beta: [failed=teams, keyword:rival=slack]
"""


def test_the_alerts_file_gives_rules_keywords_and_accounts(tmp_path: Path) -> None:
    """The file's rules take the place of ALERT_RULES; its keywords join ALERT_KEYWORDS'; an account's list
    replaces the deployment's for its calls; enrichment reports every call reason some rule names."""
    path = tmp_path / "alerts.yaml"
    path.write_text(GOOD)
    config = configuration(["machine"], ["lawyer:lawyer|attorney"], str(path))
    assert [r.reason for r in config.rules] == ["failed", "keyword", "pipeline"]
    assert [(k.name, k.speaker) for k in config.keywords] == [("lawyer", ""), ("cancel", "caller"), ("rival", "")]
    assert [r.reason for r in config.routes("beta")] == ["failed", "keyword:rival"]
    assert config.call_reasons() == {"failed"}
    settings = Settings.from_env({"ALERTS_FILE": str(path), "TEAMS_WEBHOOK_URL": TEAMS})
    assert settings.alerting().routes("beta")[0].channels == ("teams",)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rules: failed=slack", "a list of rules"),
        ("rules: [failed=fax]", "unknown channel fax"),
        ("routes: [failed]", "rules:, keywords: and accounts: only"),
        ("keywords: {cancel: [cancel]}", "keywords.cancel: {words:"),
        ("keywords: {cancel: {words: cancel}}", "keywords.cancel.words: a list"),
        ("accounts: {beta: [keyword:nope=slack]}", "no keyword rule 'nope'"),
        ("rules: [failed\n  - oops", "not YAML (line"),
    ],
)
def test_a_bad_alerts_file_is_one_line_naming_file_and_entry(text: str, words: str) -> None:
    """Each mistake in the file is one line naming the file and what is wrong where."""
    with pytest.raises(RulesError) as caught:
        parse_file(text, "alerts.yaml")
    message = str(caught.value)
    assert message.startswith("alerts.yaml: ") and words in message and "\n" not in message


def test_a_bad_alerts_file_stops_a_role_naming_alerts_file(tmp_path: Path) -> None:
    """At start, a rule of the file naming a channel that is not configured is refused as ALERTS_FILE."""
    path = tmp_path / "alerts.yaml"
    path.write_text("accounts: {beta: [failed=pagerduty]}\n")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ALERTS_FILE": str(path)})
    assert caught.value.variable == "ALERTS_FILE" and "pagerduty is not configured" in str(caught.value)
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.from_env({"ALERTS_FILE": str(tmp_path / "missing.yaml")})
