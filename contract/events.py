"""The events we publish: CloudEvents 1.0 in structured JSON mode, one frozen Struct per event type.

Every event is the same envelope (`specversion`, `id`, `source`, `type`, `subject`, `time`,
`datacontenttype`, `dataschema`, our extensions `schema` and `account`) around a `data` Struct:

    wavix.call.completed                   CallCompleted: the normalised CDR, as soon as it is in
    wavix.call.transcribed                 CallTranscribed: the transcript, with talk time and roles
    wavix.call.transcription_unavailable   TranscriptionUnavailable: why there will be no transcript
    wavix.call.erased                      CallErased: an operator erased the call's data; delete your copies
    wavix.ops.<kind>.opened / .resolved    PipelineIncident: the pipeline's own trouble began, or ended
                                           (contract/ops.py: its kinds, its data and its schema `wavix.ops/1`)

The envelope's `type` is msgspec's tag, so `decode_event` picks the right Struct by itself. An event's
`id` is a function of call id and type alone: a repeat (a retried job, a duplicate webhook) carries the
same id and consumers can drop it. Money and durations are plain decimal strings (`PlainDecimal`): a float
would turn 0.01 into 0.01000000000000000020816..., and `Decimal`'s own text would turn 1e-7 into "1E-7".

`python -m contract.events > docs/schema/wavix.call.v1.json` writes the JSON Schema of the data; a
test keeps the committed copy equal to the generated one. A change to the data Structs that is not
backward compatible needs a new `SCHEMA` version and a new schema file.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import reduce
from typing import Annotated, Any, Generic, Literal, TypeVar, cast

import msgspec

from contract import dataschema
from contract.accounts import DEFAULT as DEFAULT_ACCOUNT
from contract.ops import OPS_PREFIX, OPS_SCHEMA, OPS_SCHEMA_ID, OPS_TYPES, PipelineIncident

SPECVERSION = "1.0"
SOURCE = "wavix-events"
SCHEMA = "wavix.call/1"  # the `schema` extension attribute: data family and major version
SCHEMA_ID = "urn:wavix-events:schema:wavix.call:1"  # `$id` of the schema document
SCHEMA_FILE = "docs/schema/wavix.call.v1.json"  # the committed copy, relative to the repository
CONTENT_TYPE = "application/cloudevents+json"  # a structured-mode event's transport content type

COMPLETED = "wavix.call.completed"
TRANSCRIBED = "wavix.call.transcribed"
UNAVAILABLE = "wavix.call.transcription_unavailable"
ERASED = "wavix.call.erased"

# Why a transcript will not come: Wavix said failed, the account lacks the feature (403), we gave up waiting.
UNAVAILABLE_REASONS = frozenset({"failed", "not_provisioned", "timed_out"})

Direction = Literal["inbound", "outbound", "unknown"]
FoundBy = Literal["webhook", "reconcile", "backfill"]
Outcome = Literal["answered_human", "answered_machine", "answered_unknown", "no_answer", "busy", "failed", "unknown"]
Role = Literal["agent", "client", "unknown"]
Account = Annotated[str, msgspec.Meta(description=(
    'The Wavix account the call belongs to: its name in the deployment\'s accounts file ("default" without one).'))]
UnavailableReason = Literal["failed", "not_provisioned", "timed_out"]

# The alert rules a call can trip (ALERT_RULES picks any subset); in the order an event reports them.
ALERT_RULES = ("failed", "machine", "busy", "no_answer")

# A plain, finite, non-negative decimal as text: "0.0000001", never "1E-7" (contract/values.plain_decimal).
PlainDecimal = Annotated[str, msgspec.Meta(pattern=r"^[0-9]+(\.[0-9]+)?$", extra_json_schema={"format": "decimal"})]

# A fixed namespace, so every deployment derives the same id for the same call and type.
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:wavix-events:event")


def event_id(call_id: str, event_type: str) -> str:
    """The event id: uuid5 of "call_id:type", so repeats of one event share it and other events do not."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{call_id}:{event_type}"))


def dataschema_for(data_type: type[msgspec.Struct]) -> str:
    """The `dataschema` URI: the schema document plus a JSON pointer to this data type's definition."""
    family = OPS_SCHEMA_ID if data_type is PipelineIncident else SCHEMA_ID
    return f"{family}#/$defs/{data_type.__name__}"


# A party's (or speaker's) number: E.164 ("+14302287001"), or the raw text when it does not parse; for a destination
# that redacts numbers (contract/privacy.py, listed in `redacted`), masked or keyed-hashed instead.
Number = Annotated[str, msgspec.Meta(description=(
    'E.164 ("+14302287001"), or the raw text when it does not parse. Where `redacted` lists "numbers:mask": the '
    'country code and the last 2 digits, one "*" per digit between ("+1********01"); where it lists "numbers:hash":'
    ' "hmac:<key id>:<64 hex>", HMAC-SHA256 of the number under the deployment\'s key, equal for equal numbers'
    " while the key id is the same."))]
# The redaction rules an event was formed under for its destination (contract/privacy.py); absent: none.
RedactionRule = Literal["numbers:mask", "numbers:hash", "transcript:drop", "transcript:redact", "recording_url:drop"]
Redacted = Annotated[tuple[RedactionRule, ...], msgspec.Meta(description=(
    'The redaction rules this destination receives events under, e.g. ["numbers:hash", "transcript:drop"]; absent '
    "when it receives them whole. The event id is the same in every form."))]


class Party(msgspec.Struct, frozen=True):
    """One end of the call: E.164 when the number parses, else the raw text with `country` null."""

    number: Number | None
    country: str | None  # ISO 3166-1 alpha-2, e.g. "US"


class Anomaly(msgspec.Struct, frozen=True, kw_only=True):
    """A value Wavix sent that we could not publish as it was: the field, the raw value as text, and why."""

    field: str  # e.g. "charge", "disposition", "turns[3].s"
    raw: str  # the value as Wavix sent it, as JSON text (at most 200 characters)
    problem: str


class CallEssentials(msgspec.Struct, frozen=True, kw_only=True):
    """What every event's data repeats, so a consumer of one event type needs no other."""

    call_id: str
    direction: Direction
    from_: Party = msgspec.field(name="from")
    to: Party
    outcome: Outcome  # "unknown" when Wavix's disposition is missing or one we do not know (see anomalies)
    found_by: FoundBy = "webhook"  # how the call reached us: its webhook, reconciliation, or a backfill
    # The Wavix account the call belongs to: its name in ACCOUNTS_FILE, "default" in a deployment without one.
    account: Account = DEFAULT_ACCOUNT
    anomalies: tuple[Anomaly, ...] = ()  # values published as null (or unknown) because they were unusable
    # The destination's redaction rules this event was formed under (contract/privacy.py); left out when none.
    redacted: Redacted | msgspec.UnsetType = msgspec.UNSET


class CallCompleted(CallEssentials, frozen=True, kw_only=True):
    """`wavix.call.completed`: the CDR, normalised, with what each consumer would otherwise compute."""

    parent_call_id: str | None
    date: datetime | None  # the call's date, UTC
    disposition: str | None  # answered, noanswer, cancelled, busy, rejected, failed; null if missing or unknown
    answered_by: str | None  # human, machine, or null
    duration_s: PlainDecimal | None
    currency: Literal["USD"]
    per_minute: PlainDecimal | None
    charge: PlainDecimal | None
    forward_fee: PlainDecimal | None
    destination: str | None
    sip_trunk: str | None
    recording_url: Annotated[str, msgspec.Meta(description=(
        'Without query string or credentials; null where `redacted` lists "recording_url:drop".'))] | None
    alert_reasons: tuple[str, ...]  # e.g. ("failed",), ("machine",); empty when nothing to alert


class Speaker(msgspec.Struct, frozen=True, kw_only=True):
    """One speaker's talk time: the sum of its turns, and its fraction of everyone's."""

    speaker: Number | None  # E.164 when it parses
    role: Role
    talk_s: Decimal
    share: Decimal  # 0..1, four decimal places


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """One stretch of speech, times in ms from answer."""

    speaker: Number | None
    role: Role
    start_ms: int
    end_ms: int
    text: str
    sentiment: str | None


class CallTranscribed(CallEssentials, frozen=True, kw_only=True):
    """`wavix.call.transcribed`: the transcript, with speakers matched to agent and client."""

    transcription_id: str | None
    language: str | None
    summary: Annotated[str, msgspec.Meta(description=(
        'Null where `redacted` lists "transcript:drop"; numbers and e-mail addresses replaced by [phone], [card], '
        '[number], [email] where it lists "transcript:redact".'))] | None
    score: PlainDecimal | None  # Wavix's call score, 1.0 (negative) to 5.0 (positive)
    speakers: tuple[Speaker, ...]
    sentiment: dict[str, int]  # lower-cased turn sentiment -> number of turns
    turns: Annotated[tuple[Turn, ...], msgspec.Meta(description=(
        'Empty where `redacted` lists "transcript:drop" (speakers, sentiment and score stay); each text with numbers '
        'and e-mail addresses replaced by [phone], [card], [number], [email] where it lists "transcript:redact".'))]


class TranscriptionUnavailable(CallEssentials, frozen=True, kw_only=True):
    """`wavix.call.transcription_unavailable`: no transcript will come, and why."""

    reason: UnavailableReason


class CallErased(msgspec.Struct, frozen=True, kw_only=True):
    """`wavix.call.erased`: the call's data was erased at an operator's request (`wavix-events forget`): delete
    your copies of its events. It names no phone number; sent once to each destination that received the call's
    events, through the same delivery (retries, ledger) as they were."""

    call_id: str
    erased_at: datetime  # when the erasure ran, UTC
    event_ids: tuple[str, ...]  # the ids of the call's events (completed, transcribed, unavailable) a copy may hold
    account: Account = DEFAULT_ACCOUNT  # the erased call's account, as in its events (and the envelope's `account`)


DATA_TYPES: tuple[type[msgspec.Struct], ...] = (CallCompleted, CallTranscribed, TranscriptionUnavailable, CallErased)

D = TypeVar("D", bound=msgspec.Struct)


class _Envelope(msgspec.Struct, Generic[D], frozen=True, kw_only=True, tag_field="type"):
    """CloudEvents 1.0 attributes; `type` is the tag each event class sets."""

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = SOURCE
    subject: str  # the call id
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    schema: str = SCHEMA
    account: Account = DEFAULT_ACCOUNT  # extension attribute: the call's Wavix account (as `data.account`)
    # CloudEvents distributed-tracing extension: the publishing span, so a consumer can continue the trace.
    # Left out of the JSON when unset; never part of the id (`event_id`), which stays deterministic.
    traceparent: str | msgspec.UnsetType = msgspec.UNSET
    data: D

    @property
    def type(self) -> str:
        """The CloudEvents `type` (the Struct's tag: it is encoded, and decoded, as `type`)."""
        return str(self.__struct_config__.tag)


class CallCompletedEvent(_Envelope[CallCompleted], tag=COMPLETED, frozen=True, kw_only=True):
    pass


class CallTranscribedEvent(_Envelope[CallTranscribed], tag=TRANSCRIBED, frozen=True, kw_only=True):
    pass


class TranscriptionUnavailableEvent(_Envelope[TranscriptionUnavailable], tag=UNAVAILABLE, frozen=True, kw_only=True):
    pass


class CallErasedEvent(_Envelope[CallErased], tag=ERASED, frozen=True, kw_only=True):
    pass


class OpsEvent(_Envelope[PipelineIncident], frozen=True, kw_only=True):
    """An ops event (contract/ops.py): `subject` is the incident id, `schema` is `wavix.ops/1`."""

    schema: str = OPS_SCHEMA


def _ops_event(type_: str) -> type[OpsEvent]:
    """The Struct of one ops event type, as msgspec's tagged union needs a class per tag:
    wavix.ops.destination_failing.opened -> DestinationFailingOpenedEvent."""
    words = type_.removeprefix(OPS_PREFIX).replace(".", "_").split("_")
    name = "".join(word.title() for word in words) + "Event"
    return cast(type[OpsEvent], msgspec.defstruct(name, [], bases=(OpsEvent,), tag=type_, frozen=True,
                                                  module=__name__))


OPS_EVENTS: dict[str, type[OpsEvent]] = {type_: _ops_event(type_) for type_ in OPS_TYPES}
EVENT_CLASSES: tuple[type[msgspec.Struct], ...] = (
    CallCompletedEvent, CallTranscribedEvent, TranscriptionUnavailableEvent, CallErasedEvent, *OPS_EVENTS.values())

CloudEvent = CallCompletedEvent | CallTranscribedEvent | TranscriptionUnavailableEvent | CallErasedEvent | OpsEvent
"""Every event as the code types it; the wire's union is EVENT_CLASSES, one Struct per `type`."""

encode_event = msgspec.json.Encoder(decimal_format="string").encode
_decoder = msgspec.json.Decoder(reduce(operator.or_, EVENT_CLASSES))
decode_event = cast(Callable[[bytes | str], CloudEvent], _decoder.decode)


def data_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of every event's `data`, generated from the Structs above.

    One document: `$defs` holds each data type (the target of its events' `dataschema` pointer) and
    the top level accepts any of them.
    """
    return dataschema.document(
        DATA_TYPES, schema_id=SCHEMA_ID, title=f"Data of the {SCHEMA} events",
        description=f"`data` of {COMPLETED}, {TRANSCRIBED}, {UNAVAILABLE} and {ERASED}; money is a decimal string.")


def schema_json() -> str:
    """`data_schema()` as the text committed in `SCHEMA_FILE` (stable key order, final newline)."""
    return dataschema.text(data_schema())


if __name__ == "__main__":
    print(schema_json(), end="")
