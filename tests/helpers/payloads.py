"""Webhook bodies in every variant Wavix has used (sandbox/spec/FACTS.md), as builders of bytes."""

from __future__ import annotations

import json
from typing import Any


def post_call(call_id: str, **override: Any) -> dict[str, Any]:
    """The spec's `CallStatusWebhook` (current)."""
    body = {
        "direction": "outbound", "uuid": call_id, "destination": "France", "duration": 6, "charge": "0.822",
        "date": "2023-08-21T06:43:36.000Z", "disposition": "answered", "from": "14302287001",
        "to": "33170363950", "per_minute": "0.027",
    }
    return {**body, **override}


def post_call_whole_cdr(call_id: str) -> dict[str, Any]:
    """Before early 2026: a whole CDR, with answered_by/parent_uuid/sip_trunk/forward_fee and no direction."""
    body = post_call(call_id, answered_by="machine", parent_uuid=None, sip_trunk="32882", forward_fee="0.0")
    del body["direction"]
    return body


def post_call_old_docs(call_id: str) -> dict[str, Any]:
    """Older docs: numbers where the spec has strings, an uppercase disposition, a `+` on one number."""
    return post_call(call_id, **{"from": 12212123123, "to": "+33170363950", "charge": 0.01,
                                 "per_minute": 0.027, "disposition": "ANSWERED"})


def on_call(call_id: str, event_type: str = "completed", *, legacy: bool = False, **override: Any) -> dict[str, Any]:
    """The spec's `Call`; `legacy` gives the older form: only `uuid`, and `call_finished`."""
    body: dict[str, Any] = {
        "id": call_id, "uuid": call_id, "direction": "outbound", "event_type": event_type,
        "event_time": "2025-09-22T12:56:38.547Z", "event_payload": None, "from": "+18045961058",
        "to": "17653889567", "call_started": "2025-09-22T12:56:38.547Z", "call_answered": None,
        "call_completed": "2025-09-22T12:57:38.547Z", "machine_detected": False, "tag": "campaign",
    }
    if legacy:
        del body["id"]
        body["call_finished"] = body.pop("call_completed")
    return {**body, **override}


def transcription(call_id: str, status: str = "completed") -> dict[str, Any]:
    return {"uuid": call_id, "status": status}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
