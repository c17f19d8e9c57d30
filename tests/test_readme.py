"""The README is what a new user reads first: it must stay true to the code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import msgspec

from contract import redisurl
from contract.settings import Settings
from sandbox.config import SandboxConfig
from service.httphead import HEAD_LIMIT_BYTES, HEAD_TIMEOUT_S
from service.webhooks import BODY_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_readme_opens_with_the_two_commands():
    """The first code block holds `make demo` and `make test`."""
    first_block = README.split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block


def test_every_setting_is_in_the_configuration_table():
    """Each environment variable the code reads appears in the README's table."""
    table = README.split("## Configuration")[1].split("\n## ")[0]
    missing = [f.encode_name for f in msgspec.structs.fields(Settings) if f"`{f.encode_name}`" not in table]
    assert missing == []


def blocks() -> list[str]:
    """The README's sh code blocks, in order."""
    return [b.split("\n", 1)[1] for b in README.split("```")[1::2] if b.startswith("sh")]


def test_one_sandbox_key_throughout_and_it_is_the_simulators_default():
    """Every API key the README gives the simulator or the worker is the simulator's default key."""
    keys = set(re.findall(r"(?:--api-key[ =]|WAVIX_API_KEY=)([\w.-]+)", README))
    assert keys == {SandboxConfig().api_key}


def test_wavix_events_is_put_on_the_path_before_it_is_run():
    """The README says how `wavix-events` gets on the PATH (.venv/bin) before the first block that runs it."""
    text = "\n".join(blocks())
    path_at = text.find('export PATH="$PWD/.venv/bin:$PATH"')
    assert path_at != -1
    assert path_at < min(text.find(f"wavix-events {role}") for role in ("serve", "worker", "simulate", "dlq"))


def test_each_role_reads_the_shared_env_file_and_the_snippet_writes_a_valid_one(tmp_path):
    """The `.env` snippet, run by sh, writes settings that load; every role line sources `.env` first, so a
    new terminal has the same token, and the simulator's target uses that token."""
    snippet = next(b for b in blocks() if "cat > .env" in b)
    subprocess.run(["sh", "-c", snippet], cwd=tmp_path, check=True, timeout=30)
    env = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines() if line)
    settings = Settings.from_env(env)
    assert len(settings.webhook_tokens) == 1 and settings.wavix_api_key == SandboxConfig().api_key
    sourced = "set -a; . ./.env; set +a"
    role_lines = [line for b in blocks() if not b.startswith(sourced + " ") for line in b.splitlines()
                  if any(f"wavix-events {role}" in line for role in ("serve", "worker", "simulate", "dlq"))]
    assert role_lines and all(line.startswith(sourced + ";") for line in role_lines)  # or the block's first line
    simulate = next(line for line in role_lines if "simulate" in line)
    assert "/webhooks/wavix/$WEBHOOK_TOKENS" in simulate and "--port 8100" in simulate
    assert "WAVIX_API_URL=http://127.0.0.1:8100" in snippet


def test_the_endpoint_table_names_every_answer_the_receiver_gives():
    """Each status the webhook route can answer (service/webhooks.py, service/errors.py) is in the README's table."""
    table = README.split("## The endpoint")[1].split("\n## ")[0]
    for status in ("200", "400", "403", "404", "408", "413", "415", "503"):
        assert f"| {status} " in table, status
    assert "Retry-After" in table
    source = (ROOT / "service" / "webhooks.py").read_text() + (ROOT / "service" / "errors.py").read_text()
    assert set(re.findall(r"WebhookRejected\((\d{3})", source)) <= {"400", "403", "404", "408", "415"}
    timeout_row = next(line for line in table.splitlines() if line.startswith("| 408 "))
    assert f"{BODY_TIMEOUT_S:.0f} s after the head" in timeout_row, "the README's body time limit is the code's"
    assert f"complete in {HEAD_TIMEOUT_S:.0f} s, or over {HEAD_LIMIT_BYTES // 1024} KiB" in timeout_row


def test_the_sentinel_url_the_readme_shows_is_one_the_roles_read():
    """The README's Sentinel example loads as REDIS_URL: three Sentinels, the primary's name, database 0."""
    url = re.search(r"REDIS_URL=(redis\+sentinel://\S+)", README.split("## A Redis that fails over")[1]).group(1)  # type: ignore[union-attr]
    Settings.from_env({"REDIS_URL": url})
    target = redisurl.sentinel_target(url)
    assert target is not None and len(target.sentinels) == 3 and target.master == "wavix" and target.db == 0
