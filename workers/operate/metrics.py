"""The worker's numbers, one registry per process, served on the worker's health port (`/metrics`).

Label sets are bounded: job function, outcome, endpoint family, status, sink, event type; never call ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from workers.deliver.health import Health

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A delivery's latency runs from its first try to the destination's confirmation: milliseconds when it is up,
# hours when it was down (the retry schedule spans ~28 h).
_DELIVERY_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0,
                     86400.0, 172800.0)
_PASS_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter(
            "wavix_jobs", "Jobs finished, by function and outcome.", ["function", "outcome"], registry=r
        )
        self.job_seconds = Histogram(
            "wavix_job_seconds", "Job run time, by function.", ["function"], buckets=_SECONDS, registry=r
        )
        self.api = Counter("wavix_api_requests", "Wavix API answers, by endpoint and status.", ["endpoint", "status"],
                           registry=r)
        self.api_seconds = Histogram(
            "wavix_api_seconds", "Wavix API latency, by endpoint.", ["endpoint"], buckets=_SECONDS, registry=r
        )
        self.events = Counter("wavix_events_published", "Events published, by sink and type.", ["sink", "type"],
                              registry=r)
        self.alerts = Counter("wavix_alerts_queued", "Slack alerts queued, by reason.", ["reason"], registry=r)
        self.dead_letters = Counter("wavix_dead_letters", "Dead letters written, by kind.", ["kind"], registry=r)
        self.anomalies = Counter("wavix_anomalies", "Values Wavix sent that were published as null or unknown, by "
                                 "event type and field.", ["type", "field"], registry=r)
        self.directions = Counter("wavix_call_directions", "Completed events by direction (unknown: nothing said it).",
                                  ["direction"], registry=r)
        # Reconciliation (workers/fetch/reconcile.py): only the process that ran a pass moves these; take the
        # max / sum over the worker processes.
        self.reconciled = Counter("wavix_reconciled_calls", "Calls found only by reconciliation: each one is a "
                                  "webhook Wavix never delivered (or we could not take).", registry=r)
        self.reconcile_last_success = Gauge(
            "wavix_reconcile_last_success_timestamp_seconds", "Unix time the last successful pass ended.", registry=r)
        self.reconcile_interval = Gauge(
            "wavix_reconcile_interval_seconds", "RECONCILE_INTERVAL of this process (0: off).", registry=r)
        self.reconcile_seconds = Histogram("wavix_reconcile_pass_seconds", "Reconcile pass run time (successful "
                                           "or not).", buckets=_PASS_SECONDS, registry=r)
        self.reconcile_failures = Counter("wavix_reconcile_failures", "Reconcile passes that failed (Wavix or Redis "
                                          "unavailable past the retries).", registry=r)

        # Accounts (workers/fetch/accounts.py, reconcile.py): the label takes the configured accounts' names only.
        a = ["account"]
        self.account_api = Counter("wavix_account_api_requests", "Wavix API answers by account and status (401: "
                                   "the account's key is bad).", ["account", "status"], registry=r)
        self.account_calls = Counter("wavix_account_calls", "Completed events published, by account.", a, registry=r)
        self.account_reconciled = Counter("wavix_account_reconciled_calls", "Calls found only by reconciliation, by "
                                          "account.", a, registry=r)
        self.account_reconcile_failures = Counter("wavix_account_reconcile_failures", "Reconcile passes that failed, "
                                                  "by account.", a, registry=r)
        self.account_reconcile_last_success = Gauge(
            "wavix_account_reconcile_last_success_timestamp_seconds", "Unix time the account's last successful "
            "pass ended.", a, registry=r)

        # Destinations (workers/deliver/): counters per process (sum them); the gauges are read from Redis by every
        # worker (workers/deliver/health.py), so all report the same value: take the max.
        self.deliveries = Counter("wavix_deliveries", "Delivery tries by destination and outcome: delivered, retried "
                                  "(failed, another try is scheduled), dead_lettered, parked (destination paused).",
                                  ["destination", "outcome"], registry=r)
        self.delivery_seconds = Histogram("wavix_delivery_latency_seconds", "From a delivery's first try to the "
                                          "destination's confirmation.", ["destination"], buckets=_DELIVERY_SECONDS,
                                          registry=r)
        d = ["destination"]
        self.backlog = Gauge("wavix_destination_backlog", "Deliveries waiting for a retry or parked.", d, registry=r)
        self.destination_dead = Gauge("wavix_destination_dead_letters", "Deliveries dead-lettered so far.", d,
                                      registry=r)
        self.paused = Gauge("wavix_destination_paused", "1 while an operator has the destination paused.", d,
                            registry=r)
        self.failing_since = Gauge("wavix_destination_failing_since_timestamp_seconds", "Unix time of the first "
                                   "failure since the last success (0: not failing).", d, registry=r)
        self.failure_streak = Gauge("wavix_destination_consecutive_failures", "Failed tries since the last success.",
                                    d, registry=r)
        self.routing_reloads = Counter("wavix_routing_reloads", "SIGHUP reloads of the routing file, by outcome "
                                       "(applied, refused).", ["outcome"], registry=r)

    def destinations(self, rows: Sequence[Health]) -> None:
        """Copies each destination's health (read from Redis) into the gauges."""
        for h in rows:
            self.backlog.labels(h.name).set(h.backlog)
            self.destination_dead.labels(h.name).set(h.dead_letters)
            self.paused.labels(h.name).set(1 if h.paused else 0)
            self.failing_since.labels(h.name).set(h.failing_since_ms / 1000)
            self.failure_streak.labels(h.name).set(h.streak)

    def on_response(self, endpoint: str, status: int | str, seconds: float) -> None:
        """The Wavix client's hook: one call per API answer (or timeout / transport error)."""
        self.api.labels(endpoint, str(status)).inc()
        self.api_seconds.labels(endpoint).observe(seconds)

    def page(self) -> tuple[int, str, bytes]:
        return 200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(self.registry)
