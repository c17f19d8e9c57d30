"""The worker's resources: built once in arq's `on_startup`, closed in reverse order in `on_shutdown`.

One connection pool per process (as large as the worker's concurrency) serves Wavix, under one client per
account, each with its own key (`AccountClients`, workers/fetch/accounts.py: what every stage asks); Slack gets
a small client of its own, so that Wavix's Bearer key can never travel to another host. The Slack
dispatcher runs as a background task next to the jobs. Job functions reach everything through
`ctx["resources"]`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from arq.connections import ArqRedis

from contract import accounts as contract_accounts
from contract import logs
from contract.events import CallCompletedEvent, CallTranscribedEvent
from contract.intake import transcript_job_id
from contract.jobs import DELIVER
from contract.privacy import RedactKey, redact_event
from contract.redisbatch import BatchedRedis
from contract.settings import Settings, environment
from workers.alert.accounts import AccountOutboxes
from workers.alert.alerting import Alerting, alert_for, slack_only
from workers.alert.alerting import from_settings as alerting_from_settings
from workers.alert.config import policy_from_settings
from workers.alert.incidents import note_dead_letter, run_incidents
from workers.alert.notes import note_transcript
from workers.alert.outbox import queue_alert, run_dispatcher
from workers.alert.rules import DeliveryPolicy
from workers.alert.slack import Sender, sender_for
from workers.deadletter import dead_letter
from workers.deliver import health as destination_health
from workers.deliver import inflight, reload
from workers.deliver.jobs import decode_delivery
from workers.deliver.ledger import LEASE_S, Ledger
from workers.deliver.route import Destination, load_destinations
from workers.deliver.sinks.base import Sink, SinkOptions, build_sink, connect_early
from workers.fetch.accounts import AccountClients, reload_accounts
from workers.fetch.reconcile import run_reconciler
from workers.fetch.subaccounts import run_key_refresh
from workers.operate import observe, record
from workers.operate.metrics import WorkerMetrics
from workers.privacy import forming, index
from workers.retry import RetryPolicy
from workers.runtime import health
from workers.runtime.queue import FollowUps
from workers.runtime.supervise import REDIS_TIMEOUT_S

log = logs.get("workers")


@dataclass
class Resources:
    settings: Settings
    redis: ArqRedis
    accounts: AccountClients  # every account's Wavix client, numbers and limit: what every stage asks
    policy: RetryPolicy
    destinations: tuple[Destination, ...]
    sinks: dict[str, Sink]
    slack: Sender | None
    step_timeout_s: float
    alert_rules: frozenset[str]
    metrics: WorkerMetrics
    alert_policy: DeliveryPolicy
    follow_ups: FollowUps
    batch: BatchedRedis  # the queue's Redis for the scripts every call runs (contract/redisbatch.py)
    ledger: Ledger
    recorder: record.Writer
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    health: asyncio.Server | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    redact_key: RedactKey | None = None  # REDACT_KEY: what `numbers: hash` and ALERT_REDACT hash with
    alert_outboxes: AccountOutboxes | None = None  # accounts with their own channel (workers/alert/accounts.py)
    number_index: index.NumberIndex | None = None  # which calls had a number, for erasure (workers/privacy/index.py)
    alerting: Alerting = field(default_factory=slack_only)  # routes and the other channels (workers/alert/alerting.py)

    def transcript_job_id(self, call_id: str) -> str:
        """The one job id of a call's transcript work: the poll and Wavix's webhook share it."""
        return transcript_job_id(self.settings.key_prefix, call_id)

    def transcript_state_key(self, call_id: str) -> str:
        """The call's transcript outcome so far: "transcribed" or "unavailable:<reason>" (workers/process.py)."""
        return f"{self.settings.key_prefix}transcript_state:{call_id}"

    @property
    def not_provisioned_key(self) -> str:
        """Set for a while after Wavix answers 403 for a transcript: no one asks again until it expires."""
        return f"{self.settings.key_prefix}transcripts:not_provisioned"

    async def dead_letter(self, kind: str, payload: bytes, call_id: str, reason: str, attempts: int) -> None:
        self.metrics.dead_letters.labels(kind).inc()
        observe.note_dead(kind, reason, attempts)  # the call's record (workers/operate/record.py)
        await dead_letter(self.redis, self.settings.dead_letter_stream, kind=kind, reason=reason,
                          attempts=attempts, payload=payload, call_id=call_id,
                          retention_s=self.settings.dead_letter_retention)
        await note_dead_letter(self.redis, self.settings.key_prefix, kind, reason)  # Wavix 401/403: an incident
        if kind == DELIVER:  # the destination's health counts it (workers/deliver/health.py)
            delivery = decode_delivery(payload)
            self.metrics.deliveries.labels(delivery.destination, "dead_lettered").inc()
            await destination_health.dead_lettered(self.redis, self.settings.key_prefix, delivery.destination,
                                                   delivery.event_id)

    async def alert(self, event: CallCompletedEvent) -> None:
        """Queues one alert per reason; the dispatcher paces and groups them (workers/alert/outbox.py)."""
        await self.alerting.call(self.redis, event)  # Teams, PagerDuty, e-mail, as ALERT_RULES routes them
        slack, policy = self.outbox(event.account)
        if slack is None:
            log.debug("alert.dropped", call_id=event.subject, reasons=",".join(event.data.alert_reasons))  # alert.off
            return
        event = redact_event(event, self.settings.alert_redaction(), self.redact_key)  # ALERT_REDACT
        for reason in self.alerting.for_slack(event):
            if await queue_alert(self.redis, alert_for(event, reason), policy=policy):
                self.metrics.alerts.labels(reason).inc()
                observe.note_alert(reason)

    async def alert_transcript(self, event: CallTranscribedEvent) -> None:
        """An alerted call's transcript summary, replied in its alert's thread (workers/alert/notes.py)."""
        await self.alerting.transcript(self.redis, event)  # what was said, as keyword rules hear it (#27)
        event = redact_event(event, self.settings.alert_redaction(), self.redact_key)  # ALERT_REDACT
        slack, policy = self.outbox(event.account)
        await note_transcript(self.redis, slack, event, policy=policy)

    def outbox(self, account: str) -> tuple[Sender | None, DeliveryPolicy]:
        """Where the account's alerts go: its own channel (workers/alert/accounts.py), else the deployment's."""
        own = self.alert_outboxes.get(account) if self.alert_outboxes is not None else None
        return (own.sender, own.policy) if own is not None else (self.slack, self.alert_policy)


def destinations_for(settings: Settings) -> tuple[Destination, ...]:
    """SINKS_CONFIG's destinations, or every event to EVENTS_STREAM on the queue's own Redis."""
    base, _, query = settings.redis_url.partition("?")
    params = f"stream={quote(settings.events_stream)}&maxlen={settings.events_stream_maxlen}"
    default = f"{base}?{query}&{params}" if query else f"{base}?{params}"
    return load_destinations(settings.sinks_config or None, environment(), default_url=default,
                             hash_key=bool(settings.redact_key))


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    metrics = WorkerMetrics()
    accounts = AccountClients(settings, contract_accounts.at_start(settings), metrics=metrics,
                              concurrency=settings.worker_concurrency + 4, on_response=metrics.on_response)
    slack_http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False)
    slack = sender_for(
        slack_http, webhook_url=settings.slack_webhook_url, bot_token=settings.slack_bot_token,
        channel=settings.slack_channel, api_url=settings.slack_api_url,
    )
    redis: ArqRedis = ctx["redis"]
    destinations = destinations_for(settings)
    options = SinkOptions(key_prefix=settings.key_prefix, mark_ttl_s=settings.webhook_dedup_ttl)
    sinks = {d.name: build_sink(d.url, name=d.name, secret=d.secret, options=options) for d in destinations}
    # One batching client a process: the supervised worker's (its start and finish scripts), else our own.
    batch = ctx.get("batch") or BatchedRedis(settings.redis_url, connect_timeout=REDIS_TIMEOUT_S,
                                             timeout=REDIS_TIMEOUT_S)
    resources = Resources(
        settings=settings, redis=redis, accounts=accounts,
        policy=RetryPolicy.from_settings(settings),
        destinations=destinations, sinks=sinks,
        slack=slack, step_timeout_s=max(1.0, settings.job_timeout - 5.0),
        alert_rules=settings.alerting().call_reasons(), metrics=metrics,
        alert_policy=policy_from_settings(settings, slack),
        follow_ups=FollowUps(batch, queue=settings.queue_name, expiry_s=settings.job_expiry), batch=batch,
        ledger=Ledger(redis, settings.key_prefix, delivered_ttl_s=settings.webhook_dedup_ttl, lease_s=LEASE_S,
                      backlog_horizon_s=settings.job_expiry, scripts=batch, url=settings.redis_url),
        recorder=record.Writer(batch, settings.key_prefix, settings.record_retention),
    )
    resources.redact_key = forming.key_of(settings.redact_key)
    resources.alerting = alerting_from_settings(settings, slack_http, resources.alert_policy, slack=slack is not None,
                                                redact_key=resources.redact_key)
    resources.number_index = index.NumberIndex(batch, settings.key_prefix, index.life_s(settings))
    resources.sinks = forming.formed(sinks, resources, resources.redact_key)  # each destination's `redact:`
    resources.tasks.append(asyncio.create_task(connect_early(sinks.values())))  # PostgreSQL's migrations
    resources.health = await health.start(
        ctx.get("health_socket"),  # bound by workers/runtime/settings.create_worker
        {"/healthz": lambda: (200, "text/plain", b"ok\n"), "/metrics": metrics.page, **ctx.get("health_pages", {})},
    )
    def dispatch(sender: Sender, policy: DeliveryPolicy) -> Coroutine[Any, Any, None]:
        return run_dispatcher(redis, sender, stop=resources.stop, digest_threshold=settings.alert_digest_threshold,
                              dead_letter_stream=settings.dead_letter_stream, policy=policy)

    if slack is not None:
        resources.tasks.append(asyncio.create_task(dispatch(slack, resources.alert_policy)))
    resources.alert_outboxes = AccountOutboxes(settings, slack_http, resources.alert_policy, dispatch)
    resources.alert_outboxes.apply(accounts.configured)  # and again on each SIGHUP reload (_reloaded)
    resources.tasks.extend(resources.alerting.dispatchers(  # Teams, PagerDuty, e-mail: one outbox each
        redis, stop=resources.stop, digest_threshold=settings.alert_digest_threshold,
        dead_letter_stream=settings.dead_letter_stream))
    resources.tasks.append(asyncio.create_task(run_incidents(  # the pipeline's own incidents, auto-disable (#27)
        redis, resources.alerting, lambda: resources.destinations, prefix=settings.key_prefix,
        failing_after_s=settings.pipeline_failing_after, disable_after_s=settings.destination_disable_after,
        queue=settings.queue_name, expiry_s=settings.job_expiry, stop=resources.stop)))
    # Per account, one pass per its interval across all workers (workers/fetch/reconcile.py).
    resources.tasks.append(asyncio.create_task(run_reconciler(
        redis, accounts, settings, metrics, policy=resources.policy, stop=resources.stop)))
    # The keys of `sub_account:` accounts, from the master listing (workers/fetch/subaccounts.py).
    resources.tasks.append(asyncio.create_task(run_key_refresh(accounts, settings, stop=resources.stop)))
    resources.tasks.append(asyncio.create_task(destination_health.run_gauges(
        redis, settings.key_prefix, lambda: [d.name for d in resources.destinations], metrics.destinations,
        stop=resources.stop)))
    ctx["routing_off"] = reload.on_sighup(  # SIGHUP: the routing file again, if valid (workers/deliver/reload.py)
        resources, lambda: destinations_for(settings), options,
        on_outcome=lambda ok: _reloaded(ok, resources))
    ctx["resources"], ctx["slack_http"] = resources, slack_http
    log.info("worker.started", concurrency=settings.worker_concurrency, slack=slack is not None,
             loop=type(asyncio.get_running_loop()).__module__)  # uvloop when run by `wavix-events worker`


def _reloaded(routing_ok: bool, resources: Resources) -> None:
    """After SIGHUP's routing reload: its count, then ACCOUNTS_FILE again (workers/fetch/accounts.py)."""
    resources.metrics.routing_reloads.labels("applied" if routing_ok else "refused").inc()
    if reload_accounts(resources.accounts, resources.settings) and resources.alert_outboxes is not None:
        resources.alert_outboxes.apply(resources.accounts.configured)  # channels set, moved or dropped


async def shutdown(ctx: dict[str, Any]) -> None:
    resources: Resources | None = ctx.get("resources")
    ctx.pop("routing_off", lambda: None)()
    if resources is not None:
        if resources.health is not None:
            resources.health.close()
        resources.stop.set()
        outboxes = resources.alert_outboxes.tasks() if resources.alert_outboxes is not None else []
        for task in [*resources.tasks, *outboxes]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        await inflight.settle(10)  # first attempts still running in the background land before sinks close
        for sink in resources.sinks.values():
            with contextlib.suppress(Exception):
                await sink.close()
        if resources.batch is not ctx.get("batch"):  # the worker's own is closed by the worker, after this
            await resources.batch.aclose()
        await resources.accounts.aclose()
    for client in ("slack_http",):
        if client in ctx:
            await ctx[client].aclose()
