"""What can go wrong between a client and Wavix, as shares of API requests the sandbox spoils on purpose.

Wavix documents no rate limits and no retry policy (FACTS.md), so a client must survive whatever a real
API does: 429 with and without `Retry-After`, 500/502/503, answers slower than its timeout, connections
closed without an answer, and the 403 "not provisioned" answer for transcripts. It must also not trust a
200 blindly: `wrong_cdr` answers a CDR request for call A with another call's CDR, `oversized_cdr` with a
body over 1 MiB (a huge unknown field), which a client should refuse to buffer. `Faults` holds one share
(0..1) per fault; `pick()` turns one uniform draw into at most one fault so the shares add up exactly, and
`pick_cdr()` does the same for the two CDR-only faults, after the request survived `pick()`.
Base latency is not a fault: every API answer waits `latency_s` first, to model a real API's round trip.
"""

from __future__ import annotations

import enum
import random

import msgspec


class Fault(enum.Enum):
    DROP = "drop"  # close the socket without answering
    RATE_LIMIT = "429"  # 429 with Retry-After
    RATE_LIMIT_BARE = "429-bare"  # 429 without Retry-After
    SERVER_ERROR = "5xx"  # 500, 502 or 503
    SLOW = "slow"  # answer correctly, but only after `slow_s`
    WRONG_CDR = "wrong-cdr"  # 200 with another call's CDR (CDR requests only)
    OVERSIZED_CDR = "oversized-cdr"  # 200 with a CDR body over 1 MiB (CDR requests only)


class Faults(msgspec.Struct, frozen=True, kw_only=True):
    """Shares of API requests (0..1) that get each fault; all zero means a well-behaved API."""

    latency_s: float = 0.0  # added to every API answer, faults included
    drop: float = 0.0
    rate_limit: float = 0.0
    rate_limit_bare: float = 0.0
    server_error: float = 0.0
    slow: float = 0.0
    slow_s: float = 30.0  # how long a slow answer takes: set it beyond the client's timeout
    retry_after_s: int = 1  # the Retry-After value of a 429 that carries one
    forbidden_transcript: float = 0.0  # transcript requests answered 403 with `forbidden_message`
    forbidden_message: str = "The service is not provisioned for your account."  # Wavix's words for the 403
    wrong_cdr: float = 0.0  # CDR requests answered 200 with another call's CDR
    oversized_cdr: float = 0.0  # CDR requests answered 200 with a body over 1 MiB

    def __post_init__(self) -> None:
        shares = (self.drop, self.rate_limit, self.rate_limit_bare, self.server_error, self.slow)
        for share in (*shares, self.forbidden_transcript, self.wrong_cdr, self.oversized_cdr):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"a fault share must be within 0..1, got {share}")
        if sum(shares) > 1.0 + 1e-9:
            raise ValueError("the shares of drop, 429, 429-bare, 5xx and slow must add up to at most 1")
        if self.wrong_cdr + self.oversized_cdr > 1.0 + 1e-9:
            raise ValueError("the shares of wrong-cdr and oversized-cdr must add up to at most 1")
        if self.latency_s < 0 or self.slow_s < 0 or self.retry_after_s < 0:
            raise ValueError("latency_s, slow_s and retry_after_s must not be negative")

    @property
    def any(self) -> bool:
        return any((self.drop, self.rate_limit, self.rate_limit_bare, self.server_error, self.slow))


SERVER_ERRORS = (500, 502, 503)


def pick(faults: Faults, rng: random.Random) -> Fault | None:
    """At most one fault for a request: one draw, cut into consecutive bands of the configured shares."""
    if not faults.any:
        return None
    return _band(rng.random(), (
        (Fault.DROP, faults.drop),
        (Fault.RATE_LIMIT, faults.rate_limit),
        (Fault.RATE_LIMIT_BARE, faults.rate_limit_bare),
        (Fault.SERVER_ERROR, faults.server_error),
        (Fault.SLOW, faults.slow),
    ))


def pick_cdr(faults: Faults, rng: random.Random) -> Fault | None:
    """At most one of the CDR-only faults (a wrong or an oversized 200) for a CDR request."""
    if not (faults.wrong_cdr or faults.oversized_cdr):
        return None
    return _band(rng.random(), ((Fault.WRONG_CDR, faults.wrong_cdr), (Fault.OVERSIZED_CDR, faults.oversized_cdr)))


def _band(draw: float, bands: tuple[tuple[Fault, float], ...]) -> Fault | None:
    for fault, share in bands:
        if draw < share:
            return fault
        draw -= share
    return None


def forbids_transcript(faults: Faults, rng: random.Random) -> bool:
    """Whether this transcript request gets the 403 a Flex Pro-less account gets."""
    return faults.forbidden_transcript > 0 and rng.random() < faults.forbidden_transcript
