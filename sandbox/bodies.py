"""The bodies of the webhooks Wavix sends for a simulated call, in every shape Wavix has used, and drifted.

Each call gets one `Variant` for all its webhooks (sandbox/spec/FACTS.md):

| variant | post-call body | on-call body |
|---|---|---|
| `spec` | `CallStatusWebhook` | `Call`: `id` and `uuid`, `direction`, `call_completed` |
| `cdr` | pre-2026 whole CDR: `answered_by`, `parent_uuid`, `sip_trunk`, `forward_fee`; no `direction` | no direction |
| `numeric` | numbers as JSON numbers (`from`, `to`, `charge`...), uppercase `ANSWERED` | numbers as numbers |
| `uuid` | as spec | deprecated `uuid` only, no `id` |
| `id` | as spec | `id` only |
| `finished` | as spec | the older docs' `call_finished` instead of `call_completed` |
| `cdr-numeric` | as `cdr`, with `sip_trunk` a JSON number (older docs) | as `cdr` |

`ALL_VARIANTS` are the ones `contract.webhooks` decodes today; `cdr-numeric` is left out of it (not of
`Variant`, so the CLI sends it by default) until the service reads a numeric `sip_trunk`.

Drift (`drifted()`) changes one field the service does not need into another type, or adds one, as
Wavix may do without notice; the call id (`uuid`/`id`) always stays. The kinds, by body:
post-call `sip_trunk-number`, `charge-number`, `unknown-field`, `event_type-added`, `null-disposition`
(disposition null, `status` says it); on-call `sip_trunk-number`, `machine_detected-text` ("true"/1),
`tag-number`, `event_time-number` (epoch ms), `event_payload-string`, `unknown-field`.
"""

from __future__ import annotations

import enum
import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from sandbox.calls import SimCall, format_time, parse_time

TERMINAL = {"answered": "completed", "busy": "busy", "noanswer": "cancelled", "failed": "rejected"}
Body = dict[str, Any]


class Variant(enum.StrEnum):
    SPEC = "spec"
    CDR = "cdr"
    NUMERIC = "numeric"
    UUID = "uuid"
    ID = "id"
    FINISHED = "finished"
    CDR_NUMERIC = "cdr-numeric"


ALL_VARIANTS = tuple(v for v in Variant if v is not Variant.CDR_NUMERIC)
_OLDER = (Variant.CDR, Variant.CDR_NUMERIC)

encode = msgspec.json.Encoder(decimal_format="number").encode  # Decimals only where a variant wants numbers


def _number(text: str | None) -> int | str | None:
    """`"+14155550123"` as the JSON number 14155550123 (older docs), if it is all digits."""
    digits = (text or "").lstrip("+")
    return int(digits) if digits.isdigit() else text


def post_call(call: SimCall, variant: Variant) -> Body:
    """The post-call webhook of `call` in `variant`, before encoding."""
    if variant in _OLDER:
        trunk: str | int | None = call.sip_trunk
        if variant is Variant.CDR_NUMERIC:
            trunk = _number(call.sip_trunk)
        return {
            "uuid": call.call_id, "date": call.date, "from": call.from_, "to": call.to,
            "disposition": call.disposition, "duration": call.duration, "destination": call.destination,
            "per_minute": call.per_minute, "charge": call.charge, "sip_trunk": trunk,
            "forward_fee": call.forward_fee, "parent_uuid": call.parent_call_id, "answered_by": call.answered_by,
        }
    body: Body = {
        "direction": call.direction, "uuid": call.call_id, "destination": call.destination,
        "duration": call.duration, "charge": call.charge, "date": call.date, "disposition": call.disposition,
        "from": call.from_, "to": call.to, "per_minute": call.per_minute,
    }
    if variant is Variant.NUMERIC:
        body |= {"from": _number(call.from_), "to": _number(call.to), "disposition": call.disposition.upper(),
                 "charge": Decimal(call.charge), "per_minute": Decimal(call.per_minute)}
    return body


def post_call_body(call: SimCall, variant: Variant) -> bytes:
    """The post-call webhook of `call` in `variant`."""
    return encode(post_call(call, variant))


def on_call_events(call: SimCall) -> list[str]:
    """The on-call events of `call`, in order; the last one is terminal."""
    events = ["call_setup"]
    if call.disposition != "failed":
        events.append("ringing")
    if call.answered:
        events.append("answered")
    return [*events, TERMINAL[call.disposition]]


def on_call(call: SimCall, event: str, variant: Variant) -> Body:
    """The spec's `Call` body for `event` of `call` in `variant`, before encoding."""
    started, answered, ended = call.times()
    when = {"call_setup": started, "ringing": started + timedelta(seconds=1), "answered": answered}.get(event, ended)
    is_over = event in TERMINAL.values()
    body: Body = {
        "uuid": call.call_id, "id": call.call_id, "direction": call.direction, "event_type": event,
        "event_time": format_time(when or ended), "event_payload": None, "from": call.from_, "to": call.to,
        "call_started": call.date, "call_answered": _time(answered if event != "call_setup" else None),
        "call_completed": _time(ended if is_over else None),
        "machine_detected": call.answered_by == "machine" and event in ("answered", "completed"),
        "tag": call.tag,
    }
    if variant is Variant.UUID:
        del body["id"]
    elif variant is Variant.ID:
        del body["uuid"]
    elif variant is Variant.FINISHED:
        body["call_finished"] = body.pop("call_completed")
    elif variant is Variant.NUMERIC:
        body |= {"from": _number(call.from_), "to": _number(call.to)}
    elif variant in _OLDER:
        del body["direction"]
    return body


def on_call_body(call: SimCall, event: str, variant: Variant) -> bytes:
    """The spec's `Call` body for `event` of `call` in `variant`."""
    return encode(on_call(call, event, variant))


def transcription_body(call: SimCall) -> bytes:
    """The spec's `CDRTranscriptionCompletedWebhook`: the call's id and how its transcript ended."""
    assert call.transcript is not None
    return encode({"uuid": call.call_id, "status": call.transcript.status})


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


POST_CALL_DRIFTS = ("sip_trunk-number", "charge-number", "unknown-field", "event_type-added", "null-disposition")
ON_CALL_DRIFTS = ("sip_trunk-number", "machine_detected-text", "tag-number", "event_time-number",
                  "event_payload-string", "unknown-field")


def drifted(body: Body, call: SimCall, rng: random.Random) -> tuple[Body, str]:
    """`body` with one unneeded field changed in type (or one added), and the name of the change."""
    on_call_body = "event_type" in body
    already = {"charge-number": not isinstance(body.get("charge"), str),  # the numeric variant's charge
               "sip_trunk-number": isinstance(body.get("sip_trunk"), int)}  # cdr-numeric's trunk
    kind = rng.choice([k for k in (ON_CALL_DRIFTS if on_call_body else POST_CALL_DRIFTS) if not already.get(k)])
    changed = dict(body)
    if kind == "sip_trunk-number":
        changed["sip_trunk"] = int(call.sip_trunk) if call.sip_trunk else rng.randrange(10000, 99999)
    elif kind == "charge-number":
        changed["charge"] = Decimal(call.charge)
    elif kind == "unknown-field":
        changed["x_wavix_trace"] = {"hops": [rng.randrange(100) for _ in range(3)], "region": "eu-west"}
    elif kind == "event_type-added":
        changed["event_type"] = "call_status"
    elif kind == "null-disposition":
        changed |= {"disposition": None, "status": call.disposition}
    elif kind == "machine_detected-text":
        changed["machine_detected"] = rng.choice(("true", "false", 1, 0))
    elif kind == "tag-number":
        changed["tag"] = rng.randrange(1, 1000)
    elif kind == "event_time-number":
        changed["event_time"] = int(parse_time(body["event_time"]).timestamp() * 1000)
    elif kind == "event_payload-string":
        changed["event_payload"] = encode(body["event_payload"]).decode()
    return changed, kind
