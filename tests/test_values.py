"""The value rules pinned with data alone: amounts and durations as plain decimals, one table of outcomes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from contract.values import answered_by_of, disposition_of, outcome_of, plain_decimal


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.162", "0.162"), (0.01, "0.01"), (1e-07, "0.0000001"), ("1e-07", "0.0000001"), (6, "6"), ("6", "6"),
        (" 0.0059 ", "0.0059"), ("0", "0"), (0, "0"), ("0.0100", "0.0100"), (Decimal("2.5"), "2.5"),
        ("999999999999", "999999999999"),
    ],
)
def test_usable_amounts_are_published_as_plain_decimals(raw: Any, expected: str) -> None:
    """Strings and JSON numbers alike become plain decimal text, never scientific notation, never a float."""
    assert plain_decimal(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("NaN", "finite"), ("Infinity", "finite"), ("-Infinity", "finite"), ("1E+999", "too large"),
        ("-0.01", "negative"), (-3, "negative"), ("1,25", "not a decimal"), ("abc", "not a decimal"),
        (True, "not a number"), ([1], "not a number"), ({"a": 1}, "not a number"), ("1e12", "too large"),
        ("0.0000000000001", "decimal places"),
    ],
)
def test_unusable_amounts_become_null_with_a_reason(raw: Any, problem: str) -> None:
    """NaN, infinities, huge, negative or unreadable amounts are never published; the reason says why."""
    value, why = plain_decimal(raw)
    assert value is None and why is not None and problem in why


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_absent_amounts_are_null_without_an_anomaly(raw: Any) -> None:
    """A missing amount is not an anomaly: null, no reason."""
    assert plain_decimal(raw) == (None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("answered", "answered"), ("ANSWERED", "answered"), (" Answered ", "answered"),
        ("noanswer", "noanswer"), ("no answer", "noanswer"), ("No_Answer", "noanswer"), ("NO-ANSWER", "noanswer"),
        ("busy", "busy"), ("Busy", "busy"), ("failed", "failed"), ("rejected", "rejected"),
        ("cancelled", "cancelled"), ("canceled", "cancelled"), ("CANCELED", "cancelled"),
    ],
)
def test_every_known_disposition_in_any_case_and_spacing(raw: str, expected: str) -> None:
    """The spec's dispositions and their prose spellings, in any case and spacing, map to one word."""
    assert disposition_of(raw) == (expected, False)


@pytest.mark.parametrize(("raw", "unknown"), [(None, False), ("", False), ("teleported", True), (42, True)])
def test_missing_or_unknown_dispositions_are_null(raw: Any, unknown: bool) -> None:
    """No disposition is null; one we do not know is null too, flagged so the raw value is kept."""
    assert disposition_of(raw) == (None, unknown)


@pytest.mark.parametrize(
    ("raw", "expected", "unknown"),
    [
        ("human", "human", False), ("HUMAN", "human", False), ("machine", "machine", False),
        ("machine_start", "machine", False), ("machine_end_beep", "machine", False),
        ("machine_end_silence", "machine", False), ("machine_end_other", "machine", False),
        ("voicemail", "machine", False), ("fax", "machine", False), ("unknown", None, False), (None, None, False),
        ("robot", None, True),
    ],
)
def test_every_answered_by_value(raw: Any, expected: str | None, unknown: bool) -> None:
    """Every answered_by value Wavix and AMD vendors use maps to human, machine or null."""
    assert answered_by_of(raw) == (expected, unknown)


@pytest.mark.parametrize(
    ("disposition", "answered_by", "expected"),
    [
        ("answered", "human", "answered_human"), ("answered", None, "answered_unknown"),
        ("answered", "machine", "answered_machine"), ("noanswer", "machine", "answered_machine"),
        ("noanswer", None, "no_answer"), ("cancelled", None, "no_answer"), ("busy", None, "busy"),
        ("rejected", None, "busy"), ("failed", None, "failed"), (None, None, "unknown"),
        (None, "human", "answered_human"),
    ],
)
def test_outcome_table(disposition: str | None, answered_by: str | None, expected: str) -> None:
    """cancelled and canceled are one outcome; an unknown disposition is `unknown`, never `failed`."""
    assert outcome_of(disposition, answered_by) == expected
