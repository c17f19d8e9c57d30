"""Observe: how a job's steps reach the per-call record (workers/operate/record.py) and the trace (contract/tracing.py)
without the steps themselves knowing.

    observed(job function)   around each arq job: opens its notes and its span (child of the receipt's
                             `traceparent`), notes the try and its outcome, flushes the notes once at the end
    RecordedSink(sink)       around each destination: a `deliver <name>` span, the event's `traceparent` set to
                             it, and an entry per attempt with its result
    on_fetch(endpoint, ...)  the Wavix client's `on_response` hook: an entry and a span per CDR/transcript fetch
    note_alert / note_dead   one line each in workers/runtime/context.py's `alert` and `dead_letter`

`options(worker_options)` applies all of it to arq's options: each function `observed`, and `on_startup`
followed by `instrument` (sinks wrapped, the Wavix client's hook chained): one call where the worker is built.

A job's outcome is what its function returned ("published", "dead_letter", ...), "retry" for arq's Retry,
or the class of an exception that escaped (a bug: arq retries it). A retry notes when the next try runs
(`next_ms`, arq's own defer) and why; one whose cause is expected (a CDR or transcript not there yet, a
destination's rate limit or another attempt in flight, a follow-up waiting for the call's running job) is
a wait, not a failure. A `deliver` job's tries are numbered as its destination counts them (workers/operate/record.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from arq import Retry

from contract import tracing
from contract.events import CloudEvent
from workers.deliver.delivery import Uncounted
from workers.operate import record
from workers.retry import CallError, NotYet, TranscriptNotReady

JobFunction = Callable[[dict[str, Any], Any], Awaitable[str]]
OnResponse = Callable[[str, "int | str", float], None]

_PER_CALL_FETCHES = frozenset({"cdr", "transcript"})
_MAX_REASON = 300
_WAITS = (NotYet, Uncounted)  # a retry for these is expected: the work is not ready, not broken


class _Traced(msgspec.Struct):
    traceparent: str | None = None


_event_trace = msgspec.json.Decoder(_Traced).decode
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()  # reusable: stands for a span when tracing is off


def _identity(arg: Any) -> tuple[str, int, str | None]:
    """call id, the time the work began (ms), and the traceparent to continue, from a job's argument."""
    if not isinstance(arg, dict):
        return "", record.now_ms(), None
    began = arg.get("received_at_ms") or arg.get("first_at_ms") or record.now_ms()
    parent = arg.get("traceparent")
    if parent is None and isinstance(arg.get("event"), bytes) and tracing.enabled():
        try:
            parent = _event_trace(arg["event"]).traceparent  # a deliver job continues its event's trace
        except msgspec.DecodeError:
            parent = None
    return str(arg.get("call_id", "")), int(began), parent


def _delivery(arg: Any, job_try: int) -> tuple[str, int, str]:
    """A `deliver` job's destination, its try there (the tries before the job, plus arq's) and its source
    ("replay": an operator's); any other job makes first attempts: ("", 1, "")."""
    if not isinstance(arg, dict) or "destination" not in arg:
        return "", 1, ""
    return str(arg["destination"]), int(arg.get("tries", 1)) + job_try, "replay" if arg.get("replay") else ""


def _why(cause: BaseException | None) -> str:
    if isinstance(cause, TranscriptNotReady):
        return "transcript not ready yet"
    if isinstance(cause, NotYet):
        return "CDR not there yet"
    if isinstance(cause, CallError):
        return cause.reason[:_MAX_REASON]
    return "waiting for the call's running job" if cause is None else type(cause).__name__


def ending(outcome: str, retry: Retry | None) -> dict[str, Any]:
    """A job entry's outcome fields: a retry says when the next try runs, why, and whether it is a wait."""
    if retry is None:
        return {"outcome": outcome, "ok": outcome != "dead_letter" and outcome[:1].islower()}  # a class: a bug
    cause = retry.__cause__
    wait = cause is None or isinstance(cause, _WAITS)
    return {"outcome": "retry", "ok": wait, "wait": wait, "next_ms": int(retry.defer_score or 0),
            "reason": _why(cause)}


def observed(function: JobFunction) -> JobFunction:
    """The job function, recorded and traced."""
    name = function.__name__

    @functools.wraps(function)
    async def job(ctx: dict[str, Any], arg: Any) -> str:
        call_id, began_ms, parent = _identity(arg)
        attempt = int(ctx.get("job_try", 1))
        destination, delivery_try, source = _delivery(arg, attempt)
        notes = record.begin(call_id, began_ms, attempt, delivery_try=delivery_try, source=source)
        started = time.perf_counter()
        outcome, retry = "error", None
        try:
            traced = tracing.enabled()  # off: no span object, no attribute dict per job
            around = tracing.span(f"job {name}", parent, **{"wavix.call_id": call_id, "wavix.attempt": attempt}) \
                if traced else _NO_SPAN
            with around as span:
                try:
                    outcome = await function(ctx, arg)
                except Retry as e:
                    outcome, retry = "retry", e
                    raise
                except BaseException as e:
                    outcome = type(e).__name__
                    raise
                finally:
                    if span is not None:
                        span.set_attribute("wavix.outcome", outcome)
            return outcome
        finally:
            notes.add("job", job=name, destination=destination, attempt=delivery_try if destination else attempt,
                      source=source, ms=round((time.perf_counter() - started) * 1000, 2), **ending(outcome, retry))
            await _flush(ctx, notes)

    return job


async def _flush(ctx: dict[str, Any], notes: record.Notes) -> None:
    """The job's notes: left for the supervised worker to write with the job's end, in its finish script (one
    round trip for both, workers/runtime/supervise.py), else written now."""
    resources = ctx.get("resources")
    if resources is None or not notes.call_id:
        return
    at_finish = ctx.get("record_at_finish")
    if at_finish is not None and ctx.get("job_id"):
        parts = resources.recorder.parts(notes)
        if parts is not None:
            at_finish[ctx["job_id"]] = parts
        return
    await resources.recorder.flush(notes)


def on_fetch(then: OnResponse | None = None) -> OnResponse:
    """The Wavix client's `on_response` hook: notes and a span for the call's fetches, then `then` (metrics)."""

    def hook(endpoint: str, status: int | str, seconds: float) -> None:
        if endpoint in _PER_CALL_FETCHES:
            ok = status in (200, 404)  # 404: not there yet, an expected wait
            record.note("fetch", what=endpoint, status=str(status), ms=round(seconds * 1000, 2), ok=ok,
                        wait=status == 404)
            tracing.ended_span(f"fetch {endpoint}", seconds, error=not ok, **{"http.response.status_code": status})
        if then is not None:
            then(endpoint, status, seconds)

    return hook


class RecordedSink:
    """A sink, recorded and traced: same `name`, `connect`, `publish`, `close`; anything else passes through."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self.name: str = sink.name

    def __getattr__(self, item: str) -> Any:
        return getattr(self._sink, item)

    async def connect(self) -> None:
        await self._sink.connect()

    async def close(self) -> None:
        await self._sink.close()

    async def publish(self, event: CloudEvent, *, idempotency_key: str) -> None:
        started = time.perf_counter()
        around = tracing.span(f"deliver {self.name}", **{"wavix.call_id": event.subject, "wavix.event_id": event.id,
                              "wavix.destination": self.name}) if tracing.enabled() else _NO_SPAN
        with around:
            parent = tracing.traceparent()
            if parent is not None:
                event = msgspec.structs.replace(event, traceparent=parent)
            try:
                await self._sink.publish(event, idempotency_key=idempotency_key)
            except BaseException as e:
                _failed(event, self.name, e, time.perf_counter() - started)
                raise
        notes = record.current()
        if notes is not None:
            notes.published(event, self.name, ms=(time.perf_counter() - started) * 1000, traceparent=parent or "")


def _failed(event: CloudEvent, destination: str, error: BaseException, seconds: float) -> None:
    notes = record.current()
    if notes is None:
        return
    reason = str(getattr(error, "reason", "") or error)[:_MAX_REASON]
    notes.add("delivery", ok=False, destination=destination, event_type=event.type, event_id=event.id,
              attempt=notes.delivery_try, source=notes.source, outcome=type(error).__name__, reason=reason,
              ms=round(seconds * 1000, 2))


def note_alert(reason: str) -> None:
    """An alert the call queued for Slack."""
    record.note("alert", reason=reason)


def note_dead(kind: str, reason: str, attempts: int) -> None:
    record.note("dead_letter", ok=False, what=kind, reason=reason[:_MAX_REASON], attempt=attempts)


def options(worker_options: dict[str, Any]) -> dict[str, Any]:
    """arq's options with every job function observed and the resources instrumented after startup."""
    inner = worker_options["on_startup"]

    async def startup(ctx: dict[str, Any]) -> None:
        await inner(ctx)
        instrument(ctx)
        if not tracing.enabled():  # on only with OTEL_EXPORTER_OTLP_ENDPOINT
            tracing.setup(ctx["settings"].otel_exporter_otlp_endpoint, "wavix-events-worker")

    functions = [dataclasses.replace(f, coroutine=observed(f.coroutine)) for f in worker_options["functions"]]
    return {**worker_options, "functions": functions, "on_startup": startup}


def instrument(ctx: dict[str, Any]) -> None:
    """Wraps the sinks and gives every account's Wavix client the recording hook (workers/fetch/accounts.py)."""
    resources = ctx["resources"]
    resources.sinks = {n: s if isinstance(s, RecordedSink) else RecordedSink(s) for n, s in resources.sinks.items()}
    resources.accounts.on_response = on_fetch(resources.metrics.on_response)  # every account's client
