"""The HTTP app: `create_app(settings)` is the only way to build it.

Resources (the Redis pool, the enqueuer, the auth gate, the metrics) are built in the lifespan, put on
`app.state`, and closed in reverse order when the app stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from redis.asyncio import Redis

from contract import accounts, logs, redisurl
from contract.redisbatch import BatchedRedis
from contract.settings import Settings
from service.auth import Gate
from service.enqueue import Enqueuer
from service.errors import exception_handlers
from service.framing import refuse_ambiguous_framing
from service.health import healthz, metrics, readyz
from service.metrics import ReceiverMetrics
from service.reload import on_sighup
from service.tracing import traced
from service.webhooks import receive_webhook

log = logs.get("service")


def connect_redis(settings: Settings) -> Redis:
    """For everything but the hot path (readiness); short timeouts so that a probe answers quickly."""
    return redisurl.client(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0, max_connections=8)


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        redis = connect_redis(settings)
        pipe = BatchedRedis(settings.redis_url, connect_timeout=1.0, timeout=2.0, replicas=settings.ack_replicas,
                            replica_timeout_ms=settings.ack_timeout_ms)
        app.state.redis = redis
        app.state.pipe = pipe  # /readyz asks the very client the webhooks use (service/health.py)
        app.state.enqueuer = Enqueuer(
            pipe,
            queue_name=settings.queue_name,
            key_prefix=settings.key_prefix,
            dedup_ttl_s=settings.webhook_dedup_ttl,
            job_expiry_s=settings.job_expiry,
            on_written=app.state.metrics.enqueue_seconds.observe,
        )
        log.info("receiver.started", accounts=len(app.state.gate.accounts.all),
                 allowlist=len(settings.webhook_allowed_ips))
        reload_off = on_sighup(app.state.gate, settings)
        try:
            yield
        finally:
            reload_off()
            await pipe.aclose()
            await redisurl.close(redis)

    app = Litestar(
        route_handlers=[receive_webhook, healthz, readyz, metrics],
        lifespan=[resources],
        exception_handlers=exception_handlers,
        middleware=[traced, refuse_ambiguous_framing],
        request_max_body_size=settings.webhook_max_body,
        openapi_config=OpenAPIConfig(title="wavix-events receiver", version="0.1.0"),
        logging_config=None,
    )
    app.state.settings = settings
    app.state.metrics = ReceiverMetrics()
    app.state.gate = Gate(  # the accounts (contract/accounts.py) are read again on SIGHUP (service/reload.py)
        accounts.at_start(settings), settings.allowed_networks(), settings.trusted_proxy_networks()
    )
    return app
