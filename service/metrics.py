"""The receiver's numbers, in Prometheus' format on `/metrics`. One registry per app."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.asyncio import Redis


class ReceiverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[str, str], Counter] = {}
        self.webhooks = Counter(
            "wavix_webhooks",
            "Webhooks received, by kind and outcome (accepted, duplicate, ignored, rejected_<reason>).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self._accounts: dict[tuple[str, str], Counter] = {}
        self.account_webhooks = Counter(
            "wavix_account_webhooks",
            "Webhooks with a valid token, by account (the configured accounts only) and outcome.",
            ["account", "outcome"],
            registry=self.registry,
        )
        self.enqueue_seconds = Histogram(
            "wavix_enqueue_seconds",
            "Time to write the dedup mark and the job to Redis.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "wavix_queue_depth", "Jobs due to run now and not yet taken (deferred retries and polls excluded).",
            registry=self.registry,
        )
        self.queue_oldest_age = Gauge(
            "wavix_queue_oldest_age_seconds", "How long the oldest due job has waited (0 when none).",
            registry=self.registry,
        )

    def count(self, kind: str, outcome: str, account: str = "") -> None:
        """One webhook's outcome (and its account's, once its token named one); each labelled child is looked up
        once per pair (it is on the hot path)."""
        child = self._children.get((kind, outcome))
        if child is None:
            child = self._children[(kind, outcome)] = self.webhooks.labels(kind, outcome)
        child.inc()
        if account:
            mine = self._accounts.get((account, outcome))
            if mine is None:
                mine = self._accounts[(account, outcome)] = self.account_webhooks.labels(account, outcome)
            mine.inc()

    async def sample_queue(self, redis: Redis, queue: str) -> None:
        """Reads the queue's depth and age at scrape time: the numbers to scale workers on."""
        now_ms = time.time() * 1000
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcount(queue, "-inf", now_ms)
            pipe.zrange(queue, 0, 0, withscores=True)
            depth, oldest = await pipe.execute()
        self.queue_depth.set(depth)
        self.queue_oldest_age.set(max(0.0, (now_ms - oldest[0][1]) / 1000) if depth and oldest else 0.0)
