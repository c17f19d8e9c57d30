"""REDIS_URL's forms (contract/redisurl.py): plain Redis, and Redis Sentinel, read once and the same for every role.

A Sentinel URL lists the Sentinels and names the primary; a bad one is one line naming REDIS_URL and exit 2
from every command, before anything connects.
"""

from __future__ import annotations

import pytest

from contract import redisurl
from contract.errors import SettingsError
from contract.settings import Settings
from tests.test_startup_errors import one_line, wavix_events


@pytest.mark.parametrize(("url", "expected"), [
    ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,sentinel-c/wavix",
     redisurl.SentinelTarget(sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-c", 26379)),
                             master="wavix")),
    ("redis+sentinel://:s%40cret@127.0.0.1:26379/main-redis/3",
     redisurl.SentinelTarget(sentinels=(("127.0.0.1", 26379),), master="main-redis", db=3, password="s@cret")),
    ("rediss+sentinel://app:pw@[::1]:26379/wavix/0?sentinel_password=sp",
     redisurl.SentinelTarget(sentinels=(("::1", 26379),), master="wavix", username="app", password="pw",
                             sentinel_password="sp", ssl=True)),
])
def test_a_sentinel_url_is_read_into_sentinels_primary_and_database(url: str, expected: redisurl.SentinelTarget):
    """Every Sentinel with its port (26379 when none), the primary's name, the database, the data nodes'
    password (percent-decoded), the Sentinels' own password, and TLS for rediss+sentinel://."""
    assert redisurl.sentinel_target(url) == expected


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///run/redis.sock?db=2"])
def test_a_plain_url_is_no_sentinel_url(url: str):
    assert redisurl.sentinel_target(url) is None


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://127.0.0.1:26379", "names its primary"),
    ("redis+sentinel://127.0.0.1:26379/", "names its primary"),
    ("redis+sentinel://127.0.0.1:notaport/wavix", "port is not a number"),
    ("redis+sentinel://127.0.0.1:70000/wavix", "out of range"),
    ("redis+sentinel://127.0.0.1:26379,/wavix", "has no host"),
    ("redis+sentinel://127.0.0.1:26379/wavix/zero", "database number"),
    ("sentinel://127.0.0.1:26379/wavix", "must start with"),
    ("localhost:6379", "must start with"),
])
def test_a_bad_url_is_one_line_naming_redis_url(url: str, says: str):
    """Settings refuse it with a message naming REDIS_URL and what is wrong."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"REDIS_URL": url})
    assert "REDIS_URL" in str(raised.value) and says in str(raised.value)


COMMANDS = [("serve",), ("worker",), ("console",), ("dlq", "list"), ("destinations",), ("trace", "c1"),
            ("replay", "--destination", "x", "--since", "1m")]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_bad_sentinel_url_with_exit_2(command: tuple[str, ...]):
    """The same one line and exit status 2 from each role and CLI command (nothing connects first)."""
    result = wavix_events(*command, REDIS_URL="redis+sentinel://127.0.0.1:26379", WEBHOOK_TOKENS="t" * 24,
                          WAVIX_API_KEY="k", CONSOLE_TOKEN="c" * 24)
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert "REDIS_URL" in line and "names its primary" in line


def test_logs_show_the_url_without_its_password():
    assert redisurl.describe("redis+sentinel://:pw@h:26379/wavix") == "redis+sentinel://:***@h:26379/wavix"
    assert redisurl.describe("redis://app:pw@h:6379/0") == "redis://app:***@h:6379/0"
    assert redisurl.describe("redis://h:6379/0") == "redis://h:6379/0"
