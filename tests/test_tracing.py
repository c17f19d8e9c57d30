"""Traces: spans for the job, each fetch and each delivery, continuing the receipt's trace and handed on to
consumers in each event's `traceparent`; nothing at all when tracing is off."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contract import tracing
from contract.events import COMPLETED, event_id
from contract.jobs import PROCESS_CALL, Receipt
from contract.webhooks import Kind
from sandbox.config import SandboxConfig
from tests.pipeline import Pipeline, by_type, pipeline
from workers.operate import observe
from workers.runtime.settings import worker_options

TRACE_ID = uuid.uuid4().hex
PARENT = f"00-{TRACE_ID}-{'1' * 16}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.use(None)


async def _run(p: Pipeline) -> None:
    observed = observe.options(worker_options(p.settings))
    await p.run_worker(functions=observed["functions"], on_startup=observed["on_startup"])


async def _cleanup(p: Pipeline) -> None:
    keys = [k async for k in p.redis.scan_iter(match=f"{p.settings.key_prefix}*", count=1000)]
    if keys:
        await p.redis.delete(*keys)


async def test_the_job_continues_the_receipts_trace_and_the_event_carries_it_on(spans: InMemorySpanExporter):
    """A job whose Receipt carries a traceparent runs in that trace; its CDR fetch and its delivery are child
    spans; the published event's traceparent names the delivery span, and its id is still the deterministic one."""
    async with pipeline(SandboxConfig(seed=8, transcript_share=0.0)) as p:
        call = p.sandbox.place(1)[0]
        receipt = Receipt(kind=Kind.POST_CALL, call_id=call.call_id, event="", received_at_ms=int(time.time() * 1000),
                          body=b"{}", traceparent=PARENT)
        await p.arq().enqueue_job(PROCESS_CALL, receipt, _job_id=f"traced:{uuid.uuid4().hex}",
                                  _queue_name=p.settings.queue_name)
        try:
            await _run(p)
            finished = spans.get_finished_spans()
            jobs = [s for s in finished if s.name == "job process_call"]
            assert jobs and all(f"{j.context.trace_id:032x}" == TRACE_ID for j in jobs)  # every try, one trace
            assert all(j.parent is not None and f"{j.parent.span_id:016x}" == "1" * 16 for j in jobs)
            job = next(j for j in jobs if j.attributes and j.attributes["wavix.outcome"] == "published")
            fetch = next(s for s in finished if s.name == "fetch cdr" and s.parent
                         and s.parent.span_id == job.context.span_id)
            assert fetch.attributes is not None and fetch.attributes["http.response.status_code"] == 200
            deliver = next(s for s in finished if s.name.startswith("deliver "))
            assert deliver.parent is not None and deliver.parent.span_id == job.context.span_id
            event = by_type(await p.events(), COMPLETED)[call.call_id][0]
            assert isinstance(event.traceparent, str)
            assert event.traceparent.startswith(f"00-{TRACE_ID}-{deliver.context.span_id:016x}-")
            assert event.id == event_id(call.call_id, COMPLETED)
        finally:
            await _cleanup(p)


async def test_off_means_no_spans_and_no_traceparent():
    """Without a provider (OTEL_EXPORTER_OTLP_ENDPOINT unset) the helpers do nothing and events carry no
    traceparent attribute at all."""
    assert not tracing.enabled()
    with tracing.span("nothing") as span:
        assert span is None and tracing.traceparent() is None
    assert tracing.extract(PARENT) is None
    async with pipeline(SandboxConfig(seed=9, transcript_share=0.0)) as p:
        await p.place_and_send(1)
        try:
            await _run(p)
            raw = [fields[b"event"] for _, fields in await p.redis.xrange(p.settings.events_stream)]
            assert raw and all(b"traceparent" not in r for r in raw)
        finally:
            await _cleanup(p)


def test_setup_stays_off_without_an_endpoint():
    """`setup` turns tracing on only when OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    assert tracing.setup("", "wavix-events-test") is False
    assert not tracing.enabled()


async def test_receive_and_enqueue_spans_hand_their_trace_to_the_job(spans: InMemorySpanExporter, client, redis):
    """The receiver makes a receive span named by the route (the secret token in the path never reaches a span)
    and an enqueue span under it, and the job's Receipt carries the receive span's traceparent."""
    from contract.jobs import job_deserializer, receipt_from
    from contract.webhooks import webhooks_key
    from tests.conftest import TOKEN

    call = str(uuid.uuid4())
    body = b'{"uuid": "%s", "disposition": "answered"}' % call.encode()
    prefix = client.app.state.settings.key_prefix
    try:
        response = await client.post(f"/webhooks/wavix/{TOKEN}", content=body,
                                     headers={"content-type": "application/json"})
        assert response.status_code == 200
        finished = spans.get_finished_spans()
        receive = next(s for s in finished if s.name.startswith("receive"))
        assert receive.name == "receive POST /webhooks/wavix/{token}"
        enqueue = next(s for s in finished if s.name == "enqueue")
        assert enqueue.parent is not None and enqueue.parent.span_id == receive.context.span_id
        assert all(TOKEN not in str(s.attributes) and TOKEN not in s.name for s in finished)
        kept = await redis.lrange(webhooks_key(prefix, call), 0, -1)
        receipt = receipt_from(job_deserializer(kept[0]))
        assert receipt.traceparent is not None
        assert receipt.traceparent.startswith(f"00-{receive.context.trace_id:032x}-{receive.context.span_id:016x}-")
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        await redis.delete(*keys, client.app.state.settings.queue_name)
