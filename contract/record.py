"""The per-call record: what happened to a call, step by step, and the index of calls the console lists.

Two halves, the receiver's kept as long as the dedup mark (WEBHOOK_DEDUP_TTL), the workers' and the index
RECORD_RETENTION (contract/settings.py; docs/keys.md):

    {prefix}webhooks:{call_id}   the receiver's half, ALREADY written inside its one enqueue round trip
                                 (contract/webhooks.webhooks_key): every webhook, duplicates and reconciled
                                 calls included. Nothing is added on the receiver's hot path.
    {prefix}record:{call_id}     the workers' half: a list of msgpack `Entry`, oldest first, trimmed to the
                                 newest `RECORD_KEPT`. A job batches its entries and writes them in one
                                 pipelined round trip when it ends (workers/operate/record.py).

and the index, written by the worker that first publishes `wavix.call.completed`, and never again:

    {prefix}calls                a sorted set, call id by the time of the call's first webhook (ms)
    {prefix}summary:{call_id}    a msgpack `CallSummary`: what the console's list and charts need, the call's
                                 account included (issue #26: the console filters by it; written in the same
                                 script as before, no round trip added)

History is immutable (issue #23): the summary and the call's place in the index are written once (SET NX,
ZADD NX), so a call's first-seen time, its event's publish time and its latency never change after the
fact. A later delivery of the same event (a retry to another destination, a dead letter replayed) adds
rows to the record, never a summary; an operator's replay never writes one at all. A replay is its own
step instead, written by the command that queues it (workers/operate/record.py `replayed`), and counted apart:

    {prefix}replays:{kind}       a sorted set per kind (`destination`: `wavix-events replay`; `dead_letter`:
                                 `dlq replay`), one member per replayed delivery or letter, by its time (ms)

An `Entry` is `{at_ms, step, ...}` with only the fields its step uses (`omit_defaults`): about 60 bytes.
Steps: `job` (a try, its outcome, how long it took, and when a retry runs next), `fetch` (cdr/transcript,
HTTP status, ms), `event` (type, id), `delivery` (destination, the destination's own try number, result),
`alert` (reason), `dead_letter` (kind, reason), `replay` (what the operator replayed). `wait` marks an
expected wait (a transcript not ready yet, a CDR not there yet, a destination's rate limit): neither a
success nor a failure. Nothing secret is ever written: reasons are the sinks' and clients' own scrubbed
texts, recording links lose their query.
"""

from __future__ import annotations

import msgspec

from contract.accounts import DEFAULT as DEFAULT_ACCOUNT

RECORD_KEPT = 200  # entries per call: a call takes about 15; a destination failing for days about 40 more
STEPS = ("webhook", "job", "fetch", "event", "delivery", "alert", "dead_letter", "replay")
REPLAY_KINDS = ("destination", "dead_letter")
REPLAYS_KEPT_S = 7 * 86_400  # the replays index: past the console's longest window (the calls page's 7 days)


class Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One step of a call's life; `ok` False marks the steps that went wrong."""

    at_ms: int
    step: str
    ok: bool = True
    wait: bool = False  # an expected wait (not ready yet, rate limit): ok, yet not done
    job: str = ""  # process_call, fetch_transcript, deliver
    attempt: int = 0  # a job's try; a delivery's (and a deliver job's) try at its destination
    next_ms: int = 0  # a job that will run again: after this many ms
    outcome: str = ""  # a job's result, "retry", "error"; a delivery's "published" or the error's class
    what: str = ""  # fetch: cdr, transcript; webhook: its kind; replay: destination, dead_letter
    status: str = ""  # fetch: the HTTP status or "timeout"; webhook: accepted, duplicate, recorded
    ms: float = 0.0  # how long the step took
    event_type: str = ""
    event_id: str = ""
    destination: str = ""
    reason: str = ""
    source: str = ""  # webhook: webhook, reconcile, backfill; job, delivery: "replay" for an operator's replay
    traceparent: str = ""  # the step's span, when tracing is on


class CallSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One call in the index: enough for the console's list, filters and charts without reading its record."""

    call_id: str
    at_ms: int  # first webhook received (or the job's receipt time)
    outcome: str
    direction: str
    found_by: str = "webhook"
    alerted: bool = False
    alert_reasons: tuple[str, ...] = ()
    from_number: str = ""
    to_number: str = ""
    duration_s: str = ""
    published_at_ms: int = 0  # when `wavix.call.completed` was handed to its destinations
    recording_url: str = ""  # never with a query string (contract/events: the envelope's promise)
    event_id: str = ""
    account: str = DEFAULT_ACCOUNT  # the call's Wavix account (its events'); a summary older than accounts: default


encode_entry = msgspec.msgpack.Encoder().encode
decode_entry = msgspec.msgpack.Decoder(Entry).decode
encode_summary = msgspec.msgpack.Encoder().encode
decode_summary = msgspec.msgpack.Decoder(CallSummary).decode


def record_key(key_prefix: str, call_id: str) -> str:
    """The workers' half of a call's record: a list of `Entry`, newest `RECORD_KEPT`."""
    return f"{key_prefix}record:{call_id}"


def calls_key(key_prefix: str) -> str:
    """The index of calls: a sorted set of call ids scored by their first webhook's time in ms."""
    return f"{key_prefix}calls"


def summary_key(key_prefix: str, call_id: str) -> str:
    """A call's `CallSummary`, msgpack."""
    return f"{key_prefix}summary:{call_id}"


def replays_key(key_prefix: str, kind: str) -> str:
    """The replays of one kind (`REPLAY_KINDS`): a sorted set of replayed deliveries or letters by time (ms)."""
    return f"{key_prefix}replays:{kind}"


def latency_ms(summary: CallSummary) -> int | None:
    """Webhook to event: from the first webhook to `wavix.call.completed` handed to its destinations."""
    if not summary.published_at_ms:
        return None
    return max(0, summary.published_at_ms - summary.at_ms)


def without_query(url: str) -> str:
    """A link fit to show: no query string, fragment or credentials (a recording link's token lives there)."""
    base = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = base.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        host_and_path = rest.split("@", 1)[1]
        return f"{scheme}://{host_and_path}"
    return base
