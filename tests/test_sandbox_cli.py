"""`wavix-events simulate` as a user runs it, and the sandbox in a subprocess as benchmarks run it."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import httpx
import msgspec

from contract.webhooks import classify
from sandbox.api import read_body, respond
from sandbox.calls import SimCall
from sandbox.cli import add_arguments, config_from
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import READY_PREFIX, spawn
from sandbox.webhooks import on_call_events
from tests.sandbox_helpers import Receiver, receiving


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_help_explains_every_option() -> None:
    """`wavix-events simulate --help` lists every option, and each one has its own explanation."""
    shown = subprocess.run([sys.executable, "-m", "wavix_events.cli", "simulate", "--help"],
                           capture_output=True, text=True, check=True).stdout
    options = [a for a in _parser()._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 25
    for action in options:
        assert action.help and len(action.help) > 10, action.option_strings
        assert action.option_strings[0] in shown, action.option_strings


def test_options_build_the_config() -> None:
    """The fault, transcript and call options end up in the SandboxConfig the sandbox runs with."""
    args = _parser().parse_args(["--seed", "7", "--api-key", "K", "--fault-429", "0.02", "--fault-5xx", "0.1",
                                 "--latency", "0.1", "--transcript-delay", "5", "--fault-403", "0.5"])
    config = config_from(args)
    assert (config.seed, config.api_key, config.transcript_delay_s) == (7, "K", 5.0)
    assert config.faults == Faults(rate_limit=0.02, server_error=0.1, latency_s=0.1, forbidden_transcript=0.5)
    whole = _parser().parse_args(["--config-json", msgspec.json.encode(SandboxConfig(seed=9)).decode()])
    assert config_from(whole).seed == 9


def test_new_options_build_the_config() -> None:
    """--start-at/--spacing/--window, the null and drop shares and the CDR faults reach the SandboxConfig."""
    args = _parser().parse_args(["--start-at", "2026-06-30T23:50:00Z", "--spacing", "10", "--window", "7200",
                                 "--transcript-nulls", "0.2", "--drop-webhooks", "0.1", "--fault-wrong-cdr", "0.05",
                                 "--fault-oversized-cdr", "0.01", "--drift", "0.3", "--no-transcription-webhooks"])
    config = config_from(args)
    assert (config.start, config.spacing_s, config.window_s) == ("2026-06-30T23:50:00Z", 10.0, 7200.0)
    assert (config.transcript_nulls_share, config.drop_webhooks_share) == (0.2, 0.1)
    assert (config.faults.wrong_cdr, config.faults.oversized_cdr) == (0.05, 0.01)
    assert args.drift == 0.3 and args.transcription_webhooks is False
    assert _parser().parse_args([]).transcription_webhooks is True


def test_contradicting_shares_exit_2() -> None:
    """Fault shares adding up to more than 1 are refused with exit status 2 and a message."""
    done = subprocess.run([sys.executable, "-m", "sandbox", "--fault-429", "0.6", "--fault-5xx", "0.6"],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and "at most 1" in done.stderr


async def test_simulate_places_calls_sends_their_webhooks_and_serves_them() -> None:
    """With --target, the CLI sends every call's events, then serves the API until --linger ends."""
    receiver = Receiver()
    async with receiving(receiver) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wavix_events.cli", "simulate", "--port", "0", "--api-key", "cli-key",
            "--seed", "4", "--calls", "12", "--rate", "400", "--target", url, "--on-call-events",
            "--duplicates", "0.2", "--reorder", "--linger", "2",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith(READY_PREFIX)
        base = line[len(READY_PREFIX):].strip()
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer cli-key"}) as client:
            calls = (await client.get("/_sandbox/calls")).json()["calls"]  # placed before it listens
            assert len(calls) == 12
            expected = sum(len(on_call_events(msgspec.convert(c, type=SimCall))) + 1 for c in calls)
            expected += sum(c["transcript"] is not None for c in calls)  # transcription completed, on by default
            for _ in range(200):
                if len(set(receiver.bodies)) >= expected:
                    break
                await asyncio.sleep(0.02)
            assert len(set(receiver.bodies)) == expected
            # Every variant by default, `cdr-numeric` too (which contract.webhooks cannot decode yet): read raw.
            named = {msgspec.json.decode(b).get("id") or msgspec.json.decode(b)["uuid"] for b in receiver.bodies}
            assert named == {c["call_id"] for c in calls}
            assert (await client.get(f"/v1/cdrs/{calls[0]['call_id']}")).status_code == 200
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_spawn_runs_the_sandbox_in_a_subprocess_with_the_config() -> None:
    """`spawn(config, calls=N)` serves N calls of the seed from another process, with its faults."""
    config = SandboxConfig(seed=5, api_key="spawned", faults=Faults(rate_limit_bare=1.0))
    async with spawn(config, calls=4) as base, httpx.AsyncClient(
        base_url=base, headers={"Authorization": "Bearer spawned"}
    ) as client:
        calls = (await client.get("/_sandbox/calls")).json()["calls"]
        assert [c["index"] for c in calls] == [0, 1, 2, 3]
        assert (await client.get(f"/v1/cdrs/{calls[0]['call_id']}")).status_code == 429


class Refusing(Receiver):
    """A target that refuses every webhook, as the receiver does when the URL's token is wrong."""

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            self.bodies.append(await read_body(receive))
            await respond(send, 404, b'{"status_code":404,"detail":"Not Found"}')


async def _simulate(url: str, *extra: str) -> tuple[int, str, float]:
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "--port", "0", "--seed", "4", "--calls", "6", "--rate", "400",
        "--target", url, *extra, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, err.decode(), time.monotonic() - began


async def test_refused_webhooks_make_the_simulator_exit_1_at_once() -> None:
    """Every webhook answered 404 (a wrong token): exit 1 without lingering, one stderr line with count and answer."""
    refusing = Refusing()
    async with receiving(refusing) as url:
        status, err, took = await _simulate(url, "--linger", "30")
    assert status == 1 and took < 20
    lines = [line for line in err.splitlines() if line.startswith("wavix-events simulate:")]
    assert len(lines) == 1
    assert len(refusing.bodies) > 6  # six post-calls and the transcripts' webhooks
    assert f"refused {len(refusing.bodies)} webhook(s)" in lines[0]
    assert 'HTTP 404 {"status_code":404,"detail":"Not Found"}' in lines[0]


async def test_accepted_webhooks_exit_0_and_drifted_refusals_do_not_count() -> None:
    """A target that accepts what it understands: exit 0 even though it refuses the drifted bodies."""

    class Picky(Receiver):
        async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
            if scope["type"] == "http":
                body = await read_body(receive)
                try:
                    classify(body)
                    event_type = msgspec.json.decode(body).get("event_type")
                    plain = b"x_wavix_trace" not in body and event_type != "call_status"
                except Exception:
                    plain = False
                self.bodies.append(body)
                self.methods.append("refused" if not plain else "accepted")
                await respond(send, 200 if plain else 422, b"{}")

    picky = Picky()
    async with receiving(picky) as url:
        status, err, _ = await _simulate(url, "--linger", "0", "--drift", "1", "--variants", "spec,cdr")
    assert status == 0, err
    assert "refused" in picky.methods and "accepted" in picky.methods  # drifted bodies were refused, yet exit 0
