"""The receiver's numbers, in Prometheus' format on `/metrics`. One registry per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ReceiverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "wavix_webhooks",
            "Webhooks received, by kind and outcome (accepted, duplicate, ignored, rejected_<reason>).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.enqueue_seconds = Histogram(
            "wavix_enqueue_seconds",
            "Time to write the dedup mark and the job to Redis.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
