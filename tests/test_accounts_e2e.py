"""Several Wavix accounts in one deployment, end to end: the real receiver and worker, Redis, and a sandbox
holding a master account and two sub-accounts, one of them found by `accounts discover` and served with the key
the master listing gives at run time."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client import generate_latest

from console import trace
from contract.events import CloudEvent, decode_event
from contract.settings import Settings
from sandbox.accounts import MASTER
from sandbox.calls import SimCall
from sandbox.config import SandboxConfig, SubAccountConfig
from sandbox.faults import Faults
from sandbox.slack import render_text
from sandbox.webhooks import send_webhooks
from service.reload import reload as reload_receiver
from tests.conftest import REDIS_URL, forget
from tests.pipeline import Pipeline, pipeline, worker_process
from wavix_events.accounts import connect, discover
from workers.alert.outbox import dispatch_pending
from workers.alert.rules import DeliveryPolicy
from workers.alert.slack import sender_for
from workers.fetch.reconcile import reconcile_now

MASTER_KEY, BETA_KEY, GAMMA_KEY = "master-key-" + "m" * 16, "beta-key-" + "b" * 16, "gamma-key-" + "g" * 16
TOKENS = {"alpha": "alpha-token-" + "a" * 24, "beta": "beta-token-" + "b" * 24, "gamma": "gamma-token-" + "g" * 24}
SUBS = (SubAccountConfig(id=11, name="Beta Sales", api_key=BETA_KEY),
        SubAccountConfig(id=12, name="Gamma", api_key=GAMMA_KEY))
IDS = {"alpha": MASTER, "beta": 11, "gamma": 12}
HANDWRITTEN = """\
accounts:
  - name: alpha
    api_key_env: E2E_ALPHA_KEY
    token_env: E2E_ALPHA_TOKEN
  - name: beta
    sub_account: 11
    api_key_env: E2E_BETA_KEY
    token_env: E2E_BETA_TOKEN
"""


@dataclass
class Deployment:
    p: Pipeline
    accounts_file: Path
    beta_stream: str

    async def paths(self) -> dict[str, str]:
        """Each account's post-call webhook path, as `accounts connect` set it in the sandbox."""
        return {name: urlsplit(self.p.sandbox.call_webhooks[i]["post-call"]).path for name, i in IDS.items()}

    async def send(self, calls: list[SimCall], path: str) -> None:
        results = await send_webhooks(calls, path, client=self.p.receiver, on_first_send=self.p.sandbox.mark_sent,
                                      rate=500.0)
        assert all(r.status == 200 for r in results), [(r.status, r.answer) for r in results if r.status != 200]


@pytest.fixture
async def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    """alpha (the master account) and beta (a sub-account, key in the environment) in the accounts file; gamma
    added by discovery with its key read at run time; each account's webhooks connected through the API."""
    for name, value in {"E2E_ALPHA_KEY": MASTER_KEY, "E2E_BETA_KEY": BETA_KEY, "E2E_ALPHA_TOKEN": TOKENS["alpha"],
                        "E2E_BETA_TOKEN": TOKENS["beta"], "GAMMA_TOKEN": TOKENS["gamma"]}.items():
        monkeypatch.setenv(name, value)
    accounts_file = tmp_path / "accounts.yaml"
    accounts_file.write_text(HANDWRITTEN)
    run = uuid.uuid4().hex
    events, beta_stream = f"test:events:{run}", f"test:events:{run}:beta"
    routing = tmp_path / "sinks.yaml"
    routing.write_text("destinations:\n"
                       f"  - name: events\n    url: {REDIS_URL}?stream={events}\n"
                       f"  - name: beta-only\n    url: {REDIS_URL}?stream={beta_stream}\n"
                       "    filter:\n      accounts: [beta]\n")
    config = SandboxConfig(api_key=MASTER_KEY, seed=26, sub_accounts=SUBS, transcript_share=0.0)
    try:
        async with pipeline(config, ACCOUNTS_FILE=str(accounts_file), WAVIX_MASTER_API_KEY=MASTER_KEY,
                            SINKS_CONFIG=str(routing), EVENTS_STREAM=events, ALERT_RULES="failed,machine,busy",
                            ALERT_DIGEST_THRESHOLD="100", WORKER_CONCURRENCY="8") as p:
            p.slack.enforce_rate = False
            monkeypatch.setenv("GAMMA_SLACK", f"{p.settings.slack_webhook_url.rsplit('/', 3)[0]}/T000/B026/GAMMA")
            await _discover_gamma(p.settings, accounts_file)
            assert reload_receiver(p.receiver.app.state.gate, p.settings)  # the receiver's SIGHUP
            for name in IDS:
                await connect(p.settings, name, "http://receiver.test", io.StringIO(), dry_run=False,
                              stdin=io.StringIO())
            yield Deployment(p, accounts_file, beta_stream)
    finally:
        forget(names=[beta_stream])


async def _discover_gamma(settings: Settings, accounts_file: Path) -> None:
    """`accounts discover --keys-at-run-time` lists both sub-accounts; gamma's entry goes into the file as printed,
    with its token variable and its own alert channel."""
    out = io.StringIO()
    assert await discover(settings, out, keys_at_run_time=True) == 0
    text = out.getvalue()
    assert GAMMA_KEY not in text and BETA_KEY not in text and 'is account "beta" already' in text
    (gamma,) = yaml.safe_load(text)["accounts"]
    assert gamma == {"name": "gamma", "sub_account": 12, "token_env": "GAMMA_TOKEN"}
    accounts_file.write_text(HANDWRITTEN + f"  - name: {gamma['name']}\n    sub_account: {gamma['sub_account']}\n"
                             f"    token_env: {gamma['token_env']}\n    alert_webhook_env: GAMMA_SLACK\n")


def _of(events: list[CloudEvent], calls: list[SimCall]) -> list[CloudEvent]:
    ids = {c.call_id for c in calls}
    return [e for e in events if e.subject in ids and e.type == "wavix.call.completed"]


async def test_each_account_is_fetched_with_its_key_named_routed_alerted_and_reconciled(deployment) -> None:
    """Every account's calls come in through its own token, are fetched with its own key (a key reads only its
    account's calls in the sandbox), carry its name in the envelope and the data, reach the destination that
    selects its account only, alert in its own channel, and a call whose webhook never came is found by that
    account's own reconciliation pass."""
    d = deployment
    p, paths = d.p, await d.paths()
    placed = {name: p.sandbox.place(6, account=IDS[name]) for name in IDS}
    for name, calls in placed.items():
        await d.send(calls[:5], paths[name])  # the sixth call's webhook is "lost"
    worker = await p.run_worker()
    page = worker.ctx["resources"].metrics.page()[2].decode()
    received = generate_latest(p.receiver.app.state.metrics.registry).decode()
    for name in IDS:  # the metrics say it per account
        assert f'wavix_account_api_requests_total{{account="{name}",status="200"}}' in page
        assert f'wavix_account_calls_total{{account="{name}"}} 5.0' in page
        assert f'wavix_account_webhooks_total{{account="{name}",outcome="accepted"}} 5.0' in received
    events = await p.events()
    for name, calls in placed.items():
        mine = _of(events, calls)
        assert sorted(e.subject for e in mine) == sorted(c.call_id for c in calls[:5]), name
        assert {(e.account, e.data.account, e.data.found_by) for e in mine} == {(name, name, "webhook")}
    steps = (await trace.read(p.redis, p.settings.key_prefix, placed["beta"][0].call_id, tuple(IDS))).steps
    assert any(s.step == "webhook" for s in steps), "trace finds an account's webhooks of the call"
    beta_only = [decode_event(f[b"event"]) for _, f in await p.redis.xrange(d.beta_stream)]
    assert beta_only and {e.account for e in beta_only} == {"beta"}

    report = await reconcile_now(p.settings)
    assert report is not None and report.queued == 3  # one lost call per account, each in its own pass
    await p.run_worker()
    events = await p.events()
    for name, calls in placed.items():
        (found,) = _of(events, calls[5:])
        assert (found.account, found.data.found_by) == (name, "reconcile")

    await p.flush_alerts()
    gamma_url = p.settings.slack_webhook_url.rsplit("/", 3)[0] + "/T000/B026/GAMMA"
    async with httpx.AsyncClient() as http:
        sender = sender_for(http, webhook_url=gamma_url)
        assert sender is not None
        await dispatch_pending(p.redis, sender, digest_threshold=50, dead_letter_stream=p.settings.dead_letter_stream,
                               policy=DeliveryPolicy(prefix=f"{p.settings.key_prefix}account:gamma:"))
    alerted = {e.subject for e in events if e.type == "wavix.call.completed" and e.data.alert_reasons}
    texts = {r.path: " ".join(render_text(r.message) for r in p.slack.accepted(r.channel)) for r in p.slack.accepted()}
    gamma_alerted = alerted & {c.call_id for c in placed["gamma"]}
    others_alerted = alerted - gamma_alerted
    assert gamma_alerted and others_alerted, "the seed gives every account an alert"
    assert all(c in texts[urlsplit(gamma_url).path] for c in gamma_alerted)
    assert not any(c in texts[urlsplit(gamma_url).path] for c in others_alerted)
    assert all(c in texts[urlsplit(p.settings.slack_webhook_url).path] for c in others_alerted)


async def test_one_accounts_outage_does_not_delay_the_others(deployment) -> None:
    """alpha's Wavix answers 503, then hangs for seconds; beta's calls, sent after alpha's, are all published
    within a second or two all the same (alpha may hold at most half the job slots), and alpha's follow once
    its Wavix is back."""
    d = deployment
    p, paths = d.p, await d.paths()
    p.sandbox.set_faults(Faults(server_error=1.0), account=MASTER)
    alpha, beta = p.sandbox.place(12, account=IDS["alpha"]), p.sandbox.place(8, account=IDS["beta"])
    await d.send(alpha, paths["alpha"])
    async with worker_process(p, d.accounts_file.with_name("worker.log")):
        started = time.monotonic()
        await d.send(beta, paths["beta"])
        await _until(lambda evs: len(_of(evs, beta)) == len(beta), p, within=10.0)
        assert time.monotonic() - started < 3.0 and not _of(await p.events(), alpha)

        p.sandbox.set_faults(Faults(latency_s=3.0), account=MASTER)  # alpha hangs: its slots fill, not beta's
        more_alpha, more_beta = p.sandbox.place(20, account=IDS["alpha"]), p.sandbox.place(8, account=IDS["beta"])
        await d.send(more_alpha, paths["alpha"])
        started = time.monotonic()
        await d.send(more_beta, paths["beta"])
        await _until(lambda evs: len(_of(evs, more_beta)) == len(more_beta), p, within=10.0)
        assert time.monotonic() - started < 2.5

        p.sandbox.set_faults(Faults(), account=MASTER)
        await _until(lambda evs: len(_of(evs, alpha + more_alpha)) == 32, p, within=60.0)


async def test_a_token_of_one_account_cannot_reach_anothers_call(deployment) -> None:
    """beta's token posting alpha's call queues a job of beta's, fetched with beta's key: Wavix (the sandbox)
    does not know the call for beta, so nothing of it is published as beta's, and alpha's own webhook for the
    call, coming after, is still taken and published as alpha's: the forged one marked nothing of alpha's."""
    d = deployment
    p, paths = d.p, await d.paths()
    (call,) = p.sandbox.place(1, account=IDS["alpha"])
    await d.send([call], paths["beta"])
    await d.send([call], paths["alpha"])
    answers = [r.status for r in await send_webhooks([call], paths["alpha"], client=p.receiver, rate=500.0)]
    assert answers == [200]
    async with worker_process(p, d.accounts_file.with_name("worker.log")):
        await _until(lambda evs: bool(_of(evs, [call])), p, within=15.0)
        await _requested(p, "GET cdr 404")  # beta's key was refused the call
    published = _of(await p.events(), [call])
    assert [e.account for e in published] == ["alpha"]
    unknown = await p.receiver.post("/webhooks/wavix/" + "x" * 32, json={"uuid": call.call_id})
    assert unknown.status_code == 404


async def _until(done: object, p: Pipeline, *, within: float) -> None:
    """Waits until `done(events)` holds (polling the stream), failing after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        if done(await p.events()):  # type: ignore[operator]
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _requested(p: Pipeline, answer: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not any(k.startswith(answer) for k in p.sandbox.requests):
        assert time.monotonic() < deadline, f"the sandbox never answered {answer}"
        await asyncio.sleep(0.05)
