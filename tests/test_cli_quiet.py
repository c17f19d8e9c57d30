"""One-shot commands (dlq, destinations, pause, resume, replay, backfill, db, trace) print their answer and no log
lines, unless `-v`: their output is for an operator (or a pipe), not the JSON log stream a running role writes.

Each command runs as a process against the real Redis, as an operator would run it.
"""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from redis.asyncio import Redis

from contract.jobs import PROCESS_CALL, Receipt
from contract.webhooks import Kind
from tests.conftest import REDIS_URL, forget
from tests.test_startup_errors import wavix_events
from wavix_events.cli import build_parser
from workers.deadletter import dead_letter

ONE_SHOT = [["dlq", "list"], ["destinations"], ["pause", "crm"], ["resume", "crm"],
            ["replay", "--destination", "crm", "--since", "2h"], ["backfill", "--from", "2026-01-01", "--to",
                                                                   "2026-01-02"], ["db", "migrate"], ["trace", "c1"]]


async def letters(prefix: str, count: int) -> list[str]:
    """`count` dead `process_call` letters in {prefix}dead, the stream KEY_PREFIX=prefix names."""
    redis = Redis.from_url(REDIS_URL)
    try:
        found = []
        for _ in range(count):
            receipt = Receipt(kind=Kind.POST_CALL, call_id=str(uuid.uuid4()), event="", received_at_ms=0,
                              body=b"{}")
            found.append(await dead_letter(redis, f"{prefix}dead", kind=PROCESS_CALL, reason="401", attempts=1,
                                           payload=msgspec.msgpack.encode(receipt), call_id=receipt.call_id))
        return found
    finally:
        await redis.aclose()


def test_dlq_replay_prints_what_it_did_and_logs_only_with_v() -> None:
    """`dlq replay ID` says what it queued on stdout and nothing on stderr, where its INFO log lines used to be
    mixed in; `dlq replay ID -v` brings the log lines back on stderr."""
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        first, second = asyncio.run(letters(prefix, 2))
        quiet = wavix_events("dlq", "replay", first, REDIS_URL=REDIS_URL, KEY_PREFIX=prefix)
        assert quiet.returncode == 0 and quiet.stdout.startswith(f"{first}: queued process_call"), quiet
        assert quiet.stderr == ""
        verbose = wavix_events("dlq", "replay", second, "-v", REDIS_URL=REDIS_URL, KEY_PREFIX=prefix)
        assert verbose.returncode == 0 and verbose.stdout.startswith(f"{second}: queued"), verbose
        assert "dead_letter.replayed" in verbose.stderr
    finally:
        forget([prefix])


@pytest.mark.parametrize("command", ONE_SHOT, ids=lambda c: c[0])
def test_every_one_shot_command_takes_v(command: list[str]) -> None:
    """`-v` (or `--verbose`) is accepted by each one-shot command, after its other arguments or before them."""
    assert build_parser().parse_args([*command, "-v"]).verbose
    assert build_parser().parse_args([command[0], "--verbose", *command[1:]]).verbose
