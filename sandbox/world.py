"""The world the simulated calls happen in: countries, valid phone numbers, destinations and prices.

Numbers are real-looking E.164 numbers that `phonenumbers` accepts as valid for their country (the
enrichment step looks their country up, so made-up digits would test nothing). Prices are per-minute
USD rates as Decimal; what a call costs is `per_minute * billed minutes`, billed in whole minutes.
"""

from __future__ import annotations

import random
from decimal import Decimal

import msgspec
import phonenumbers
from phonenumbers import PhoneNumberType


class Country(msgspec.Struct, frozen=True):
    region: str  # ISO 3166 code, as phonenumbers names it
    name: str
    city: str  # used in `destination` texts for landlines
    carrier: str  # used in `destination` texts for mobiles
    fixed: Decimal  # outbound per-minute rate to a landline
    mobile: Decimal  # outbound per-minute rate to a mobile


COUNTRIES: tuple[Country, ...] = (
    Country("US", "United States", "New York", "Verizon", Decimal("0.0090"), Decimal("0.0090")),
    Country("GB", "United Kingdom", "London", "Vodafone", Decimal("0.0120"), Decimal("0.0270")),
    Country("DE", "Germany", "Berlin", "Telekom", Decimal("0.0150"), Decimal("0.0580")),
    Country("FR", "France", "Paris", "Orange", Decimal("0.0110"), Decimal("0.0270")),
    Country("ES", "Spain", "Madrid", "Movistar", Decimal("0.0130"), Decimal("0.0350")),
    Country("IT", "Italy", "Milan", "TIM", Decimal("0.0140"), Decimal("0.0410")),
    Country("NL", "Netherlands", "Amsterdam", "KPN", Decimal("0.0160"), Decimal("0.0630")),
    Country("PL", "Poland", "Warsaw", "Orange", Decimal("0.0190"), Decimal("0.0240")),
    Country("BR", "Brazil", "Sao Paulo", "Vivo", Decimal("0.0220"), Decimal("0.0790")),
    Country("AU", "Australia", "Sydney", "Telstra", Decimal("0.0250"), Decimal("0.0460")),
)

# Receiving a call on a number costs little; forwarding it to a phone (PSTN) adds a forward fee.
INBOUND_PER_MINUTE = Decimal("0.0040")
FORWARD_FEES = (Decimal("0.0"), Decimal("0.0"), Decimal("0.0100"))
CENTS = Decimal("0.0001")


def phone_number(rng: random.Random, country: Country, mobile: bool) -> str:
    """A valid E.164 number (with `+`) of `country`: the country's example number with new last digits."""
    kind = PhoneNumberType.MOBILE if mobile else PhoneNumberType.FIXED_LINE
    example = phonenumbers.example_number_for_type(country.region, kind)
    assert example is not None, country.region
    digits = str(example.national_number)
    for _ in range(20):
        tail = "".join(str(rng.randrange(10)) for _ in range(min(5, len(digits) - 3)))
        candidate = phonenumbers.PhoneNumber()
        candidate.merge_from(example)
        candidate.national_number = int(digits[: len(digits) - len(tail)] + tail)
        if phonenumbers.is_valid_number(candidate):
            return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def destination(country: Country, mobile: bool) -> str:
    """What Wavix writes in an outbound CDR's `destination`: the country, then a carrier or a city."""
    return f"{country.name} - {country.carrier}" if mobile else f"{country.name} - {country.city}"


def charge(per_minute: Decimal, duration_s: int) -> Decimal:
    """Whole minutes are billed: 61 s costs two minutes, 0 s costs nothing."""
    minutes = -(-duration_s // 60)
    return (per_minute * minutes).quantize(CENTS)


def money(amount: Decimal) -> str:
    """USD as Wavix writes it: a decimal string with four places, never a float."""
    return str(amount.quantize(CENTS))
