"""What the queue carries between the receiver and the workers, and how it is encoded.

The queue carries msgpack bytes (msgspec), never pickle: `job_serializer` and `job_deserializer` are
given to arq on both sides. A job is arq's own record `{t, f, a, k, et}` whose single argument is a
`Receipt`: the webhook as received, raw body included, so nothing Wavix sent is lost.
"""

from __future__ import annotations

from typing import Any

import msgspec

from contract.accounts import DEFAULT
from contract.intake import scoped
from contract.webhooks import Kind, Webhook

# The job functions, by name: the receiver enqueues them, the worker registers them.
PROCESS_CALL = "process_call"
FETCH_TRANSCRIPT = "fetch_transcript"
DELIVER = "deliver"
JOB_FUNCTIONS = (PROCESS_CALL, FETCH_TRANSCRIPT, DELIVER)


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """One accepted webhook: what it asked for, when it arrived, and its body exactly as sent."""

    kind: Kind
    call_id: str
    event: str
    received_at_ms: int
    body: bytes
    source: str = "webhook"  # how the call reached us: "webhook", "reconcile" or "backfill"
    listed_type: str | None = None  # the CDR list's `type` (placed / received) when found by listing
    traceparent: str | None = None  # W3C trace context of the receive span, when tracing is on (contract/tracing.py)
    account: str = DEFAULT  # the account whose token (or listing) brought the call: its key fetches it

    @property
    def key(self) -> str:
        """The call's id under its account: what its job ids and webhook list are named by (contract/intake.py)."""
        return scoped(self.account, self.call_id)


def function_for(webhook: Webhook) -> str:
    return FETCH_TRANSCRIPT if webhook.kind is Kind.TRANSCRIPTION else PROCESS_CALL


def _enc_hook(obj: Any) -> Any:
    # arq stores a failed job's exception as its result; keep its text rather than fail to store it.
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
job_serializer = _encoder.encode
job_deserializer = msgspec.msgpack.Decoder().decode


def encode_job(function: str, argument: msgspec.Struct, enqueue_time_ms: int, job_try: int = 1) -> bytes:
    """arq's job record (see `arq.jobs.serialize_job`), encoded with our serializer."""
    return _encoder.encode({"t": job_try, "f": function, "a": [argument], "k": {}, "et": enqueue_time_ms})


def receipt_from(arg: Any) -> Receipt:
    """The job argument back as a `Receipt` (the deserializer yields plain maps)."""
    return msgspec.convert(arg, Receipt)
