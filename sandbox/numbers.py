"""The account's own phone numbers (DIDs) as Wavix's `GET /v1/numbers` lists them (the spec's `Number`).

They are `sandbox.calls.account_numbers(seed)`: every simulated call is placed from one of them (outbound)
or to one of them (inbound), so a client that lists them can infer a call's direction from its numbers,
as FACTS.md suggests. Everything else about a number (fees, city, its inbound destination: a SIP trunk on
the platform) is plausible, fixed data, enough to validate against the spec and nothing more.
"""

from __future__ import annotations

from typing import Any

from sandbox import world
from sandbox.calls import account_numbers

DOC_TYPES = [{"id": 1, "name": "identity", "title": "Proof of identity"},
             {"id": 2, "name": "address", "title": "Proof of address"}]
LABELS = ("support", "sales", None, "campaign-7")


def owned(seed: int) -> list[dict[str, Any]]:
    """The account's numbers in the order the account bought them, as `Number` bodies."""
    return [_number(i, number, country) for i, (number, country) in
            enumerate(zip(account_numbers(seed), world.COUNTRIES, strict=False))]


def _number(i: int, number: str, country: world.Country) -> dict[str, Any]:
    trunk_id = 23100 + i
    return {
        "id": 4100 + i,
        "number": number.lstrip("+"),  # Wavix lists numbers without `+`
        "activation_fee": "0.99",
        "monthly_fee": "1.50",
        "per_min": world.money(world.INBOUND_PER_MINUTE),
        "city": country.city,
        "state": "NY" if country.region == "US" else None,
        "country": country.name,
        "country_short_name": country.region,
        "destination": [{"id": 1, "destination": str(trunk_id), "priority": 1, "transport": 5,
                         "trunk_id": trunk_id, "srtp": False, "trunk_label": "Support trunk"}],
        "channels": 24,
        "require_docs": [],
        "documents": [],
        "domestic_cli": True,
        "free_min": 0,
        "unlimited": False,
        "label": LABELS[i % len(LABELS)],
        "status": "active",
        "seconds": "0",
        "added": f"2025-0{1 + i % 9}-10T09:00:00.000Z",
        "paid_until": "2027-01-01",
        "sms_enabled": False,
        "sms_relay_url": None,
        "cnam": False,
        "call_recording_enabled": True,
        "transcription_enabled": True,
        "transcription_threshold": 6,
        "call_status_url": None,
    }
