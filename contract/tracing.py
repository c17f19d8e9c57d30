"""Tracing: OpenTelemetry spans for receive -> enqueue -> job -> fetch -> delivery, off unless asked for.

`setup(settings, service)` turns it on when OTEL_EXPORTER_OTLP_ENDPOINT is set (OTLP over HTTP; the
exporter reads its other OTEL_* variables itself); otherwise every helper here is a no-op that costs one
attribute test, so the receiver's hot path pays nothing when tracing is off. Tests install an SDK provider
with an in-memory exporter through `use(provider)`.

The context travels as a W3C `traceparent` string: in the job's `Receipt.traceparent` (receiver -> worker)
and in each event's CloudEvents distributed-tracing attribute `traceparent` (worker -> consumer), so a
consumer can continue the trace. The event id never depends on it (contract/events.event_id).

The tracer lives here rather than in OTel's global provider, so a test's provider never leaks into
another's and the no-op path never reaches the OTel API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer


class _State:
    tracer: Tracer | None = None
    provider: TracerProvider | None = None


_state = _State()


def enabled() -> bool:
    return _state.tracer is not None


def setup(endpoint: str, service: str) -> bool:
    """Turns tracing on for this process when `endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT) is set."""
    if not endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use(provider)
    return True


def use(provider: TracerProvider | None) -> None:
    """Installs `provider` (None turns tracing off again, flushing what was pending)."""
    if _state.provider is not None and provider is not _state.provider:
        _state.provider.shutdown()
    _state.provider = provider
    _state.tracer = provider.get_tracer("wavix-events") if provider is not None else None


def extract(traceparent: str | None) -> Context | None:
    """The context a `traceparent` names, to parent a span on; None when off or absent."""
    if _state.tracer is None or not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


@contextmanager
def span(name: str, parent: str | None = None, **attributes: Any) -> Iterator[Span | None]:
    """A span around a block, child of the current span or of `parent` (a traceparent); None when off."""
    tracer = _state.tracer
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, context=extract(parent), attributes=_clean(attributes)) as current:
        yield current


def ended_span(name: str, seconds: float, *, error: bool = False, **attributes: Any) -> None:
    """A span for something that already happened (`seconds` long, ending now), under the current span."""
    tracer = _state.tracer
    if tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    end = time.time_ns()
    started = tracer.start_span(name, start_time=end - int(seconds * 1e9), attributes=_clean(attributes))
    if error:
        started.set_status(Status(StatusCode.ERROR))
    started.end(end_time=end)


def traceparent() -> str | None:
    """The current span as a W3C traceparent ("00-<trace>-<span>-<flags>"); None when off or outside a span."""
    if _state.tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None and v != ""}
