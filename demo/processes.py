"""The service's roles as real processes: the receiver (`wavix-events serve`) and one worker.

Each runs exactly as an operator would run it, configured only through its environment, with names
unique to this demo run (queue, key prefix, streams), so a demo never touches anyone's data. The children
stay in the demo's process group, so a Ctrl-C in the terminal reaches them too; the demo then stops
each one (SIGTERM, SIGKILL after a timeout) and waits for it, leaving no process behind. Their output
goes to log files in the run's directory, shown when something fails.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
from redis.asyncio import Redis

from contract.settings import Settings


@dataclass(frozen=True)
class RunNames:
    """Everything this run creates in Redis is named after `run_id`, so it can all be found and deleted."""

    run_id: str

    @property
    def prefix(self) -> str:
        return f"demo:{self.run_id}:"

    @property
    def queue(self) -> str:
        return f"{self.prefix}queue"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def dead(self) -> str:
        return f"{self.prefix}dead"

    @property
    def pattern(self) -> str:
        """Matches every key of the run: ours under the prefix, and arq's (`arq:job:demo:RUN:...`)."""
        return f"*{self.run_id}*"


def role_env(inherited: Mapping[str, str], names: RunNames, **settings: str) -> dict[str, str]:
    """The roles' environment: the inherited one minus every service setting, plus the demo's settings.

    Dropping the inherited settings keeps a real WAVIX_API_KEY or SLACK_WEBHOOK_URL from ever reaching the
    demo's roles: they talk only to the sandbox and the Slack stand-in.
    """
    ours = {f.encode_name for f in msgspec.structs.fields(Settings)}
    env = {k: v for k, v in inherited.items() if k not in ours}
    return env | {
        "QUEUE_NAME": names.queue, "KEY_PREFIX": names.prefix, "EVENTS_STREAM": names.events,
        "DEAD_LETTER_STREAM": names.dead, "DEMO_RUN_ID": names.run_id, **settings,
    }


DIGEST_THRESHOLD = 5  # alerts waiting at once above this go to Slack as one digest


def role_settings(*, redis_url: str, wavix_url: str, wavix_api_key: str, slack_webhook_url: str,
                  transcript_wait_s: int) -> dict[str, str]:
    """The demo's settings: quick transcript polls and retries, so late transcripts and faults resolve in seconds."""
    return {
        "REDIS_URL": redis_url, "WEBHOOK_TOKENS": secrets.token_hex(24), "WAVIX_API_URL": wavix_url,
        "WAVIX_API_KEY": wavix_api_key, "SLACK_WEBHOOK_URL": slack_webhook_url,
        "TRANSCRIPT_POLL": "2", "TRANSCRIPT_WAIT": str(transcript_wait_s), "RETRY_MAX_DELAY": "2",
        "WAVIX_TIMEOUT": "5", "WORKER_HEALTH_PORT": "0", "JOB_COMPLETION_WAIT": "3",
        "WEBHOOK_DEDUP_TTL": "3600", "JOB_EXPIRY": "3600", "ALERT_DIGEST_THRESHOLD": str(DIGEST_THRESHOLD),
        "LOG_LEVEL": "WARNING",  # the logs are kept only when the run fails: warnings and errors say why
    }


def free_port() -> int:
    """A free loopback port (the receiver's): bound, read, released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """One role's process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    stopped: bool = field(default=False)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_role(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Child:
    """Starts `wavix-events ARGS` with this interpreter; stdout and stderr go to LOG_DIR/NAME.log."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "wavix_events.cli", *args], env=dict(env),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    return Child(name, process, log)


class RoleFailed(Exception):
    """A role exited or did not become ready; the message carries the end of its log."""

    def __init__(self, child: Child, what: str) -> None:
        super().__init__(f"the {child.name} {what}; the end of {child.log}:\n{child.tail()}")


async def wait_http(child: Child, url: str, timeout_s: float = 30.0) -> None:
    """Waits until `url` answers 2xx (the role is serving), failing early if the process exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as http:
        while True:
            if child.process.poll() is not None:
                raise RoleFailed(child, f"exited with status {child.process.returncode}")
            try:
                if (await http.get(url)).is_success:
                    return
            except httpx.TransportError:
                pass
            if loop.time() > deadline:
                raise RoleFailed(child, f"did not answer at {url} within {timeout_s:.0f} s")
            await asyncio.sleep(0.1)


async def wait_key(child: Child, redis: Redis, key: str, timeout_s: float = 30.0) -> None:
    """Waits until `key` exists (the worker writes arq's health-check key once it polls the queue)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await redis.exists(key):
        if child.process.poll() is not None:
            raise RoleFailed(child, f"exited with status {child.process.returncode}")
        if loop.time() > deadline:
            raise RoleFailed(child, f"did not start polling its queue within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


def check_running(children: list[Child]) -> None:
    """Raises RoleFailed for the first role that has exited on its own."""
    for child in children:
        if child.process.poll() is not None:
            raise RoleFailed(child, f"exited with status {child.process.returncode}")


async def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL once `timeout_s` has passed; returns once the process is reaped."""
    if process.poll() is None:
        process.terminate()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while process.poll() is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if process.poll() is None:
        process.kill()
        await asyncio.to_thread(process.wait)


async def stop_all(children: list[Child], timeout_s: float = 10.0) -> None:
    """Stops every child at once (each gets `timeout_s` to finish its work)."""
    await asyncio.gather(*(stop_process(c.process, timeout_s) for c in children if not c.stopped))
    for child in children:
        child.stopped = True
