"""Settings come from the environment; a bad value names its variable and the command exits 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from contract.errors import SettingsError
from contract.settings import Settings


def test_defaults_need_no_environment():
    """With nothing set, the defaults point at local Redis with a seven-day dedup window."""
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.webhook_dedup_ttl == 7 * 86_400
    assert settings.webhook_tokens == ()


def test_lists_are_comma_separated_and_numbers_parsed():
    """WEBHOOK_TOKENS and WEBHOOK_ALLOWED_IPS split on commas; WEBHOOK_DEDUP_TTL becomes an int."""
    settings = Settings.from_env(
        {"WEBHOOK_TOKENS": "t" * 16 + ", " + "u" * 16, "WEBHOOK_ALLOWED_IPS": "62.212.73.112, 10.0.0.0/8",
         "WEBHOOK_DEDUP_TTL": "3600"}
    )
    assert settings.webhook_tokens == ("t" * 16, "u" * 16)
    assert [str(n) for n in settings.allowed_networks()] == ["62.212.73.112/32", "10.0.0.0/8"]
    assert settings.webhook_dedup_ttl == 3600


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WEBHOOK_DEDUP_TTL": "a week"}, "WEBHOOK_DEDUP_TTL"),
        ({"WEBHOOK_DEDUP_TTL": "-1"}, "WEBHOOK_DEDUP_TTL"),
        ({"WEBHOOK_ALLOWED_IPS": "not-an-ip"}, "WEBHOOK_ALLOWED_IPS"),
        ({"WEBHOOK_TOKENS": "short"}, "WEBHOOK_TOKENS"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"WEBHOOK_DEDUP_TTL": "100", "JOB_EXPIRY": "10"}, "JOB_EXPIRY"),
        ({"ALERT_RULES": "failed,machnie"}, "ALERT_RULES"),
        ({"WAVIX_API_URL": "api.wavix.com"}, "WAVIX_API_URL"),
        ({"WAVIX_API_URL": "ftp://api.wavix.com"}, "WAVIX_API_URL"),
        ({"WAVIX_MAX_BODY": "0"}, "WAVIX_MAX_BODY"),
    ],
)
def test_a_bad_value_names_its_variable(env, variable):
    """Each bad value raises SettingsError carrying the variable's name."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == variable
    assert str(raised.value).startswith(variable)


def test_the_command_exits_2_with_a_message_naming_the_variable():
    """`wavix-events serve` with a bad setting prints one line naming it and exits 2."""
    result = subprocess.run(
        [sys.executable, "-m", "wavix_events.cli", "serve"],
        env={"WEBHOOK_DEDUP_TTL": "soon", "PATH": ""}, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "WEBHOOK_DEDUP_TTL" in result.stderr
    command = [sys.executable, "-m", "wavix_events.cli", "serve"]
    missing = subprocess.run(command, env={"PATH": ""}, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2
    assert "WEBHOOK_TOKENS" in missing.stderr


def test_a_misspelt_alert_rule_stops_the_worker_with_one_line():
    """`ALERT_RULES=failed,machnie` is refused at start (exit 2, one line naming it), never silently ignored."""
    result = subprocess.run(
        [sys.executable, "-m", "wavix_events.cli", "worker"],
        env={"ALERT_RULES": "failed,machnie", "WAVIX_API_KEY": "k", "PATH": ""}, capture_output=True, text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "ALERT_RULES" in result.stderr and "machnie" in result.stderr


def test_the_queue_and_streams_live_under_key_prefix_unless_named():
    """Two environments told apart by KEY_PREFIX share nothing: the queue and the event and dead-letter streams
    default to names under it (the default prefix keeps wavix:queue, wavix:events, wavix:dead); a name set
    explicitly is used as given."""
    default = Settings.from_env({})
    assert (default.queue_name, default.events_stream, default.dead_letter_stream) == (
        "wavix:queue", "wavix:events", "wavix:dead")
    staging = Settings.from_env({"KEY_PREFIX": "staging:"})
    assert (staging.queue_name, staging.events_stream, staging.dead_letter_stream) == (
        "staging:queue", "staging:events", "staging:dead")
    named = Settings.from_env({"KEY_PREFIX": "staging:", "QUEUE_NAME": "q", "EVENTS_STREAM": "e",
                               "DEAD_LETTER_STREAM": "d"})
    assert (named.queue_name, named.events_stream, named.dead_letter_stream) == ("q", "e", "d")
    assert Settings(key_prefix="test:").queue_name == "test:queue"
