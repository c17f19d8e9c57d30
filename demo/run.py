"""One demo run, start to end: Redis, the world (sandbox, Slack), the roles, the calls, the watch, the cleanup.

    choose Redis -> serve sandbox + Slack stand-in -> start receiver + worker -> place calls, send webhooks
    (10% of the calls' webhooks never sent) -> one reconcile pass recovers those -> watch the streams
    until every call is settled (or the deadline) -> stop roles -> delete the run's
    keys -> stop the private Redis -> summary

Whatever happens (success, failure, Ctrl-C), the roles are stopped, the run's keys deleted and the private
Redis stopped before it returns. Exit status: 0 when every placed call produced its completed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.live import Live

from contract import redisurl
from contract.settings import Settings
from demo import channels, display, processes, traffic
from demo import postgres as warehouse
from demo.processes import Child, RunNames
from demo.redis_server import RedisChoice, RedisUnavailable, choose, stop_private
from demo.watch import Alerts, Outcomes, slack_alerts
from sandbox.api import ASGIApp, create_app
from sandbox.server import Server
from sandbox.slack import WEBHOOK_PATH, SlackStandIn
from sandbox.state import Sandbox
from workers.fetch.reconcile import PassReport, reconcile_now

REAL_SETTINGS = ("WAVIX_API_URL", "WAVIX_API_KEY", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN")


@dataclass(frozen=True)
class Options:
    """What `python -m demo` was asked for; the defaults are `make demo`'s (about 40 s on a laptop)."""

    calls: int = 300
    rate: float = 100.0
    live: bool = True
    wait_s: float = 60.0  # after the last webhook, how long every call may take to settle
    transcript_wait_s: int = 20
    transcript_delay_s: float = 4.0
    redis_url: str | None = None  # REDIS_URL, when set
    redis_probe: str = "127.0.0.1:6379"
    drop_webhooks: float = traffic.DROPPED  # share of calls whose webhooks the sandbox never sends
    console: bool = False  # keep the operator console open on the run's data until Ctrl-C
    postgres_url: str | None = None  # --postgres: the calls go to PostgreSQL too (demo/postgres.py)


@dataclass
class World:
    """The simulated outside: Wavix's sandbox and Slack's stand-in, each on a loopback port of this process."""

    sandbox: Sandbox
    slack: SlackStandIn
    wavix_url: str
    slack_url: str


@contextlib.asynccontextmanager
async def world(options: Options, api_key: str) -> AsyncIterator[World]:
    """Serves the sandbox and the stand-in in this loop, so the demo reads their state directly."""
    sandbox = Sandbox(traffic.sandbox_config(options.transcript_delay_s, api_key, options.drop_webhooks))
    slack = SlackStandIn()
    wavix_server, slack_server = Server(create_app(sandbox)), Server(cast(ASGIApp, slack))
    try:
        wavix_url, slack_url = await wavix_server.start(), await slack_server.start()
        yield World(sandbox, slack, wavix_url, slack_url)
    finally:
        await slack_server.close()
        await wavix_server.close()


async def start_roles(names: RunNames, env: dict[str, str], log_dir: Path, redis: Redis,
                      children: list[Child]) -> str:
    """Starts the receiver and one worker; returns the receiver's base URL once both are working."""
    port = processes.free_port()
    receiver = processes.start_role("receiver", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, log_dir)
    children.append(receiver)
    worker = processes.start_role("worker", ["worker"], env, log_dir)
    children.append(worker)
    base = f"http://127.0.0.1:{port}"
    await processes.wait_http(receiver, f"{base}/readyz")
    await processes.wait_key(worker, redis, f"{names.queue}:health-check")
    return base


class Watch:
    """The run's live state; `snapshot()` is what the display and the summary show."""

    def __init__(self, names: RunNames, calls: int, w: World) -> None:
        self.names, self.calls, self.world = names, calls, w
        self.tally = traffic.WebhookTally()
        self.outcomes = Outcomes()
        self.alerts = Alerts()
        self.began = time.monotonic()
        self.reconcile: Callable[[], Awaitable[PassReport | None]] | None = None  # run once, after the webhooks

    async def refresh(self, redis: Redis) -> None:
        await self.outcomes.refresh(redis, self.names)
        self.alerts = slack_alerts(self.world.slack)

    def snapshot(self) -> display.Snapshot:
        answers, faults = traffic.api_faults(self.world.sandbox)
        return display.Snapshot(self.names.run_id, self.calls, time.monotonic() - self.began, self.tally,
                                self.outcomes, self.alerts, answers, faults,
                                dropped=self.world.sandbox.webhook_stats()["dropped_calls"])


async def drive(options: Options, watch: Watch, target: str, redis: Redis, children: list[Child],
                console: Console) -> None:
    """Sends the webhooks and watches until every call is settled, or `wait_s` after the last webhook."""
    calls = watch.world.sandbox.place(options.calls)
    sender = asyncio.create_task(traffic.send(watch.world.sandbox, calls, target, options.rate, watch.tally))
    live = Live(console=console, auto_refresh=False, transient=False) if options.live else None
    deadline: float | None = None
    last_line = 0.0
    try:
        with live or contextlib.nullcontext():
            while True:
                await watch.refresh(redis)
                snap = watch.snapshot()
                if live is not None:
                    live.update(display.live_panel(snap), refresh=True)
                elif snap.elapsed_s - last_line >= 5:
                    last_line = snap.elapsed_s
                    console.print(display.progress_line(snap), highlight=False)
                processes.check_running(children)
                if sender.done():
                    sender.result()
                    await _reconcile_once(watch, console)
                    deadline = deadline or time.monotonic() + options.wait_s
                    if watch.outcomes.settled(options.calls) or time.monotonic() > deadline:
                        return
                await asyncio.sleep(0.25)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _reconcile_once(watch: Watch, console: Console) -> None:
    """The pass a worker runs every RECONCILE_INTERVAL, run here once the webhooks are sent (no waiting)."""
    if watch.reconcile is None:
        return
    reconcile, watch.reconcile = watch.reconcile, None
    report = await reconcile()
    found = "failed (see the summary)" if report is None else f"{report.queued} calls without a webhook queued"
    console.print(f"Reconciliation against Wavix's CDR list: {found}", highlight=False)


async def clean(redis: Redis, names: RunNames) -> int:
    """Deletes every key of the run; returns how many are left (0 unless Redis failed us)."""
    keys = [k async for k in redis.scan_iter(match=names.pattern, count=1000)]
    for i in range(0, len(keys), 500):
        await redis.delete(*keys[i : i + 500])
    return len([k async for k in redis.scan_iter(match=names.pattern, count=1000)])


async def run(options: Options, environ: dict[str, str], console: Console) -> int:
    """The whole demo; returns the exit status (130 after Ctrl-C)."""
    names = RunNames(secrets.token_hex(6))
    if any(environ.get(k) for k in REAL_SETTINGS):
        console.print("[yellow]Note:[/] `make demo` always runs against the built-in Wavix sandbox and Slack "
                      "stand-in; the WAVIX_*/SLACK_* settings in your environment are not used here.")
    try:
        choice = await choose(options.redis_url, options.redis_probe)
    except RedisUnavailable as e:
        console.print(f"[red]{e}[/]", highlight=False)
        return 1
    console.print(f"Redis: {choice.label} · run {names.run_id} · keys under demo:{names.run_id}:", highlight=False)
    log_dir = Path(".demo") / names.run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    return await _run_with(options, environ, console, names, choice, log_dir)


async def _run_with(options: Options, environ: dict[str, str], console: Console, names: RunNames,
                    choice: RedisChoice, log_dir: Path) -> int:
    children: list[Child] = []
    redis = redisurl.client(choice.url)
    watch: Watch | None = None
    error: str | None = None
    interrupted = False
    try:
        async with world(options, api_key=secrets.token_hex(12)) as w, channels.stand_ins() as others:
            settings = processes.role_settings(
                redis_url=choice.url, wavix_url=w.wavix_url, wavix_api_key=w.sandbox.config.api_key,
                slack_webhook_url=w.slack_url + WEBHOOK_PATH, transcript_wait_s=options.transcript_wait_s)
            env = {**processes.role_env(environ, names, **settings), **others.env}  # Teams, PagerDuty, e-mail
            pg = await warehouse.prepare(options.postgres_url, names.run_id, console) if options.postgres_url else None
            if pg is not None:
                env["SINKS_CONFIG"] = str(warehouse.routing(pg, choice.url, names.events, log_dir))
            target = await start_roles(names, env, log_dir, redis, children)
            console.print(f"Receiver {target} · worker pid {children[1].process.pid} · sandbox {w.wavix_url} · "
                          f"Slack stand-in {w.slack_url}", highlight=False)
            watch = Watch(names, options.calls, w)
            watch.reconcile = lambda: reconcile_now(Settings.from_env(env), settle_s=0.0)
            await drive(options, watch, f"{target}/webhooks/wavix/{env['WEBHOOK_TOKENS']}", redis, children, console)
            await watch.refresh(redis)
            await channels.show(others, console)
            if pg is not None:
                await warehouse.show(pg, len(watch.outcomes.completed), console)
            if options.console:
                await keep_console_open(watch, env, log_dir, children, console, choice.url)
    except asyncio.CancelledError:
        interrupted = True
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    except (processes.RoleFailed, RedisError, OSError) as e:
        error = str(e)
    finally:
        leftover = await _shut_down(children, redis, names, choice)
    return _report(console, watch, children, choice, leftover, log_dir, error=error, interrupted=interrupted)


async def keep_console_open(watch: Watch, env: dict[str, str], log_dir: Path, children: list[Child],
                            console: Console, redis_url: str) -> None:
    """`--console`: the summary so far, then `wavix-events console` on the run's data until Ctrl-C."""
    console.print(display.summary_table(watch.snapshot()))
    port, token = processes.free_port(), secrets.token_hex(16)
    role = processes.start_role("console", ["console"], {**env, "CONSOLE_TOKEN": token, "CONSOLE_PORT": str(port),
                                                         "CONSOLE_HOST": "127.0.0.1", "CONSOLE_ALLOW_ACTIONS": "1"},
                                log_dir)
    children.append(role)
    await processes.wait_http(role, f"http://127.0.0.1:{port}/healthz")
    console.print(f"[bold]Console:[/] http://127.0.0.1:{port}/ · token {token} · Ctrl-C ends the demo", highlight=False)
    console.print(f"Consume the run's events: .venv/bin/python -m examples.redis_consumer --url {redis_url} "
                  f"--stream {watch.names.events} --group demo   (others: examples/README.md)", highlight=False)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()  # Ctrl-C is how this mode ends: the run is judged as if it had ended here


async def _shut_down(children: list[Child], redis: Redis, names: RunNames, choice: RedisChoice) -> int:
    """Roles first (so nothing writes again), then the run's keys, then the private Redis."""
    await processes.stop_all(children)
    try:
        leftover = await clean(redis, names)
    except (RedisError, OSError):
        leftover = 0 if choice.process is not None else -1  # a private Redis keeps nothing once stopped
    finally:
        await redisurl.close(redis)
        await stop_private(choice)
    return leftover


def _tidy_logs(log_dir: Path, *, keep: bool) -> None:
    """The roles' logs stay only when something failed: then they say what."""
    if not keep:
        shutil.rmtree(log_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            log_dir.parent.rmdir()


def _report(console: Console, watch: Watch | None, children: list[Child], choice: RedisChoice, leftover: int,
            log_dir: Path, *, error: str | None, interrupted: bool) -> int:
    """Prints the summary, the examples (after a good run) and the result line; returns the exit status."""
    if error:
        console.print(f"[red]The demo failed:[/] {error}", highlight=False)
    complete = watch is not None and len(watch.outcomes.completed) == watch.calls
    status = "interrupted" if interrupted else ("ok" if complete and not error else "failed")
    _tidy_logs(log_dir, keep=status == "failed")
    if watch is not None:
        snap = watch.snapshot()
        console.print(display.summary_table(snap))
        if status == "ok":
            display.show_examples(console, snap)
        console.print(display.verdict(snap, status, leftover, log_dir), highlight=False)
        pids = [c.process.pid for c in children] + ([choice.process.pid] if choice.process else [])
        private = {"redis_port": choice.port} if choice.process else {}
        print(display.result_line(snap, status=status, redis=choice.origin, **private, leftover_keys=leftover,
                                  pids=",".join(map(str, pids))), flush=True)
    elif status == "failed":
        console.print(f"Logs of the roles: {log_dir}", highlight=False)
    return {"ok": 0, "interrupted": 130}.get(status, 1)
