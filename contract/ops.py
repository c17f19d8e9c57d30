"""Operational events: the pipeline telling about its own trouble, as CloudEvents a destination can subscribe to.

Each pipeline incident (workers/alert/incidents.py) is told twice, like Svix's operational webhooks:

    wavix.ops.<kind>.opened     when it opens, once
    wavix.ops.<kind>.resolved   when it ends, once

    kind                          subject of the incident          `count`
    destination_failing           a destination failing past PIPELINE_FAILING_AFTER
    destination_paused            a destination paused by hand, or auto-disabled after its `disable_after`
    dead_letters                  deliveries to a destination dead-lettered   how many, since it opened
    missed_webhooks               reconciliation found calls whose webhook never came   how many
    wavix_auth                    Wavix refuses our API key (401/403)
    transcripts_not_provisioned   Wavix says the account has no transcription

The envelope is the call events' (contract/events.py) with `subject` the incident id and `schema` `wavix.ops/1`;
the data is one Struct, `PipelineIncident`, the same for every kind and both phases. Its id is a function of the
incident id and the event type (`events.event_id`), so the opened (or resolved) event of one incident has one id
wherever it is formed, and the delivery's idempotency key `<event id>:<destination>` makes it once per
destination. This module imports nothing of ours: contract/events.py builds the envelopes from it.

`python -m contract.ops > docs/schema/wavix.ops.v1.json` writes the data's JSON Schema; a test compares.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

from contract import dataschema

OPS_SCHEMA = "wavix.ops/1"  # the `schema` extension attribute of the ops events
OPS_SCHEMA_ID = "urn:wavix-events:schema:wavix.ops:1"
OPS_SCHEMA_FILE = "docs/schema/wavix.ops.v1.json"
OPS_PREFIX = "wavix.ops."

IncidentKind = Literal["destination_failing", "destination_paused", "dead_letters", "missed_webhooks", "wavix_auth",
                       "transcripts_not_provisioned"]
KINDS: tuple[str, ...] = get_args(IncidentKind)
Phase = Literal["opened", "resolved"]
PHASES: tuple[str, ...] = get_args(Phase)


def ops_type(kind: str, phase: str) -> str:
    """`wavix.ops.<kind>.<phase>`, e.g. wavix.ops.destination_failing.opened."""
    return f"{OPS_PREFIX}{kind}.{phase}"


OPS_TYPES = tuple(ops_type(kind, phase) for kind in KINDS for phase in PHASES)


def is_ops(event_type: str) -> bool:
    return event_type.startswith(OPS_PREFIX)


class PipelineIncident(msgspec.Struct, frozen=True, kw_only=True):
    """`wavix.ops.<kind>.opened` and `.resolved`: a pipeline incident opened, or ended (the same incident id)."""

    incident_id: Annotated[str, msgspec.Meta(description=(
        '"<kind>:<destination>:<opened, unix ms>": the same in an incident\'s opened and resolved events, and the '
        "events' `subject`."))]
    kind: IncidentKind
    destination: str | None  # the destination it is about; null when it is about the pipeline as a whole
    opened_at: datetime  # UTC
    resolved_at: datetime | None  # UTC; null in the opened event
    title: str  # one line, as the alert says it
    detail: str  # what to do about it, as the alert says it
    count: int = 0  # dead letters or missed webhooks so far; 0 for the other kinds


def data_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of the ops events' `data`."""
    return dataschema.document((PipelineIncident,), schema_id=OPS_SCHEMA_ID, title=f"Data of the {OPS_SCHEMA} events",
                               description=f"`data` of every {OPS_PREFIX}<kind>.opened and .resolved event.")


def schema_json() -> str:
    """`data_schema()` as the text committed in `OPS_SCHEMA_FILE`."""
    return dataschema.text(data_schema())


if __name__ == "__main__":
    print(schema_json(), end="")
