"""Retry policy for outbound calls: the only place that decides "try again in N seconds" or "give up".

A client (`workers.fetch.wavix`) turns every failure into one of these errors; the error's type decides the rule,
the delay travels with it (`Transient.retry_after`):

    CallError(reason, status)            an outbound call failed; str(e) is the reason, never a secret
    ├── Transient(retry_after)           timeout, dropped connection, 408, 429, 5xx: capped backoff
    │   └── CdrMismatch                  a 200 CDR that names another call: Wavix's error, retried like one
    ├── NotYet                           404 of a CDR right after the call: it may not exist yet (few tries)
    │   └── TranscriptNotReady           404 of a transcript: usually ready "within 10 minutes" (longer wait)
    └── Permanent                        401, other 4xx, an undecodable 200: never retried
        ├── NotProvisioned               403 on the transcript: the feature is off for the account
        └── TooLarge                     a body over WAVIX_MAX_BODY: never published

Each class has a `code` (`transient`, `cdr_mismatch`, `too_large`, ...): the first word of every reason the
policy writes, so a dead letter says in one word why it is there.

    GiveUp(error, reason, attempts)      not a CallError: what the policy hands back when the caller must
                                         dead-letter (it is never retried by arq)

arq retries a job only when the job raises `arq.Retry`, up to the worker's `max_tries`. The worker's
`max_tries` is therefore only a backstop (set it above `RetryPolicy.longest`, e.g. 25): arq fails a job that
is past it without running it, so nothing would be dead-lettered. The real limit per error class lives here.

`attempt` is the job's try number (arq's `ctx["job_try"]`, 1 for the first run), counted across error
classes: a NotYet after three transient failures has used four of its tries.

    try:
        cdr = await client.get_cdr(call_id, attempt=ctx["job_try"])
    except CallError as e:
        raise policy.retry_or_give_up(e, ctx["job_try"]) from e   # arq.Retry or GiveUp

and the job's outermost layer catches `GiveUp` and dead-letters with `give_up.reason` and `.attempts`.

Deliveries to our own destinations follow a `Schedule` instead (a list of waits, Svix's by default:
5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each +-10 % jitter, so 8 tries over about 28 hours): a receiver
down over lunch, or overnight, gets its events when it is back instead of a dead-letter stream of them.
A destination sets its own (`retry: {schedule: [...], max_age: 2d}` in the routing file).
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass, field, replace

from arq import Retry

from contract.settings import Settings


class CallError(Exception):
    """Base of the outbound-call errors. `reason` names the endpoint family and status, never a URL."""

    code = "call_error"

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Transient(CallError):
    """Worth retrying soon: the peer was slow, unreachable, rate-limiting or broken for a moment."""

    code = "transient"

    def __init__(self, reason: str, retry_after: float | None = None, *, status: int | None = None) -> None:
        super().__init__(reason, status=status)
        self.retry_after = retry_after


class CdrMismatch(Transient):
    """Wavix answered a CDR request with another call's record: never published, retried, then dead-lettered."""

    code = "cdr_mismatch"


class NotYet(CallError):
    """The record is missing, but may appear: Wavix can answer 404 for a CDR right after the call."""

    code = "not_yet"


class TranscriptNotReady(NotYet):
    """The transcript is missing: transcription runs after the call and takes minutes."""

    code = "transcript_not_ready"


class Permanent(CallError):
    """Retrying cannot help (bad key, bad parameter, a body we cannot read): dead-letter it."""

    code = "permanent"


class NotProvisioned(Permanent):
    """Transcription is not enabled for the account (403). Callers may publish without a transcript."""

    code = "not_provisioned"


class TooLarge(Permanent):
    """An answer larger than WAVIX_MAX_BODY: a record that size is not a call we can publish."""

    code = "too_large"


class Busy(Exception):
    """Not a failure: the call's account has its most Wavix requests running in this process
    (workers/fetch/accounts.py); the job steps aside for `wait_s` (arq.Retry) rather than hold a job slot."""

    def __init__(self, reason: str, wait_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


class GiveUp(Exception):
    """The policy's verdict that `error` will not be retried; the caller dead-letters with `reason`."""

    def __init__(self, error: CallError, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.attempts = attempts


@dataclass(frozen=True)
class Backoff:
    """One error class's rule: capped exponential backoff with full jitter above a floor.

    The delay before retry n (n = the attempt that just failed) is uniform in
    [floor, max(floor, min(cap, base * 2**(n-1)))]. Give up once `max_attempts` tries have failed, or
    (when the caller says how long the work has been going) once the next try would start after `max_elapsed`.
    """

    base: float
    cap: float
    max_attempts: int
    floor: float = 0.0
    max_elapsed: float | None = None

    def ceiling(self, attempt: int) -> float:
        """The largest delay after `attempt` failed tries (exponent clamped: no overflow at any attempt)."""
        return max(self.floor, min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), 60)))


@dataclass(frozen=True)
class Decision:
    """Retry after `delay` seconds, or give up (`retry` False, `delay` 0). `reason` is ready to log."""

    retry: bool
    delay: float
    reason: str
    attempt: int

    def to_arq(self) -> Retry:
        """arq's exception that re-runs the job after `delay`; only for a decision to retry."""
        if not self.retry:
            raise ValueError("a decision to give up has no arq.Retry")
        return Retry(defer=self.delay)


@dataclass(frozen=True)
class RetryPolicy:
    """Decides retry-or-give-up per error class. Pass a seeded `random.Random` for repeatable delays."""

    transient: Backoff = Backoff(base=1.0, cap=300.0, max_attempts=20, floor=0.5)
    not_yet: Backoff = Backoff(base=5.0, cap=60.0, max_attempts=5, floor=2.0)
    transcript: Backoff = Backoff(base=30.0, cap=180.0, max_attempts=20, floor=30.0, max_elapsed=1800.0)
    retry_after_cap: float = 600.0  # never wait longer than this, whatever Retry-After says
    retry_after_jitter: float = 1.0  # spread clients told the same Retry-After
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def for_transcript_wait(cls, seconds: float, rng: random.Random | None = None) -> RetryPolicy:
        """The default policy, waiting at most `seconds` (settings' TRANSCRIPT_WAIT) for a transcript."""
        policy = cls() if rng is None else cls(rng=rng)
        return replace(policy, transcript=replace(policy.transcript, max_elapsed=float(seconds)))

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The worker's policy: RETRY_MAX_DELAY caps transient backoff; the transcript is first polled
        TRANSCRIPT_POLL seconds after the call, then less often, for at most TRANSCRIPT_WAIT."""
        policy = cls()
        first, cap = float(settings.transcript_poll), float(settings.retry_max_delay)
        transcript = Backoff(base=first, cap=first * 6, max_attempts=20, floor=first,
                             max_elapsed=float(settings.transcript_wait))
        transient = replace(policy.transient, cap=cap, floor=min(policy.transient.floor, cap))
        return replace(policy, transient=transient, transcript=transcript,
                       retry_after_cap=max(cap, policy.retry_after_cap))

    @property
    def longest(self) -> int:
        """The most tries any rule allows: arq's `max_tries` must be at least this."""
        return max(self.transient.max_attempts, self.not_yet.max_attempts, self.transcript.max_attempts)

    def rule_for(self, error: CallError) -> Backoff | None:
        """The rule for `error`'s class; None means never retry."""
        if isinstance(error, Permanent):
            return None
        if isinstance(error, TranscriptNotReady):
            return self.transcript
        if isinstance(error, NotYet):
            return self.not_yet
        if isinstance(error, Transient):
            return self.transient
        return None  # an unknown CallError subclass: do not loop on something nobody classified

    def decide(self, error: CallError, attempt: int, elapsed: float | None = None) -> Decision:
        """Retry `error`, raised by try `attempt` (1-based)? `elapsed`: seconds since the work began."""
        kind = error.code
        rule = self.rule_for(error)
        if rule is None:
            return Decision(False, 0.0, f"{kind}: {error.reason}; not retryable", attempt)
        if attempt >= rule.max_attempts:
            return Decision(False, 0.0, f"{kind}: {error.reason}; gave up after {attempt} attempts", attempt)
        delay = self._delay(error, rule, attempt)
        if rule.max_elapsed is not None and elapsed is not None and elapsed + delay > rule.max_elapsed:
            reason = f"{kind}: {error.reason}; gave up after {elapsed:.0f}s (limit {rule.max_elapsed:.0f}s)"
            return Decision(False, 0.0, reason, attempt)
        reason = f"{kind}: {error.reason}; retry {attempt + 1} in {delay:.1f}s"
        return Decision(True, delay, reason, attempt)

    def retry_or_give_up(
        self, error: CallError, attempt: int, elapsed: float | None = None
    ) -> Retry | GiveUp:
        """The exception for a job to raise: `arq.Retry(defer=...)`, or `GiveUp` to dead-letter."""
        decision = self.decide(error, attempt, elapsed)
        if decision.retry:
            return decision.to_arq()
        return GiveUp(error, decision.reason, attempt)

    def _delay(self, error: CallError, rule: Backoff, attempt: int) -> float:
        retry_after = error.retry_after if isinstance(error, Transient) else None
        if retry_after is not None:
            # Honour the server: at least what it asked for (plus a little spread), at most our cap.
            asked = max(retry_after, 0.0) + self.rng.uniform(0.0, self.retry_after_jitter)
            return min(asked, self.retry_after_cap)
        return self.rng.uniform(rule.floor, rule.ceiling(attempt))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


DELIVERY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)  # Svix's: 8 tries over ~27.6 h
MAX_SCHEDULE_TRIES = 30  # below workers/process.py's TRY_LIMIT (40): a schedule must end before arq's backstop
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds from `90`, `"5s"`, `"5m"`, `"2h"`, `"2d"` or `"1h30m"`; ValueError for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if not text or _DURATION.sub("", text) or not _DURATION.findall(text):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 2h, 2d)")
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))


@dataclass(frozen=True)
class Schedule:
    """One destination's retry schedule: the waits after each failed try, and optionally a maximum age.

    Without `max_age` the delivery gives up once every wait is spent (len(delays) + 1 tries). With it, the
    last wait repeats until the next try would start more than `max_age` after the first. Each wait is drawn
    from [d * (1 - jitter), d * (1 + jitter)], never sooner than a Retry-After the destination sent.
    """

    delays: tuple[float, ...] = DELIVERY_SCHEDULE
    max_age: float | None = None
    jitter: float = 0.1
    retry_after_cap: float = 86400.0

    def __post_init__(self) -> None:
        if not self.delays or any(d < 0 for d in self.delays):
            raise ValueError("a schedule needs at least one wait, none negative")
        if self.max_age is not None and self.tries_within(self.max_age) > MAX_SCHEDULE_TRIES:
            raise ValueError(f"max_age allows more than {MAX_SCHEDULE_TRIES} tries: make the last wait longer")
        if self.max_age is None and len(self.delays) + 1 > MAX_SCHEDULE_TRIES:
            raise ValueError(f"a schedule may have at most {MAX_SCHEDULE_TRIES - 1} waits")

    def tries_within(self, age: float) -> int:
        """How many tries fit in `age` seconds (nominal waits, the last repeated)."""
        tries, spent, step = 1, 0.0, 0
        while tries <= MAX_SCHEDULE_TRIES:
            spent += self.delays[min(step, len(self.delays) - 1)]
            if spent > age:
                break
            tries, step = tries + 1, step + 1
        return tries

    @property
    def span(self) -> float:
        """Nominal seconds from the first try to the last (max_age when set)."""
        return self.max_age if self.max_age is not None else sum(self.delays)

    def describe(self) -> str:
        waits = ", ".join(_short(d) for d in self.delays)
        return f"{waits}" + (f" (repeat the last until {_short(self.max_age)})" if self.max_age is not None else "")

    def wait(self, failed: int) -> float | None:
        """The nominal wait after `failed` failed tries; None when the schedule has none left by count."""
        if failed <= len(self.delays):
            return self.delays[max(failed, 1) - 1]
        return self.delays[-1] if self.max_age is not None else None

    def decide(self, error: CallError, failed: int, age: float, rng: random.Random | None = None) -> Decision:
        """Retry a delivery whose try number `failed` (1-based) raised `error`, `age` s after its first try?"""
        kind = error.code
        nominal = self.wait(failed) if isinstance(error, Transient | NotYet) else None
        if nominal is None:
            why = "not retryable" if not isinstance(error, Transient | NotYet) else f"gave up after {failed} tries"
            return Decision(False, 0.0, f"{kind}: {error.reason}; {why}", failed)
        draw = (rng or random).uniform(nominal * (1 - self.jitter), nominal * (1 + self.jitter))
        retry_after = error.retry_after if isinstance(error, Transient) else None
        delay = max(draw, min(retry_after or 0.0, self.retry_after_cap))
        if self.max_age is not None and age + delay > self.max_age:
            limit = f"max_age {_short(self.max_age)}"
            reason = f"{kind}: {error.reason}; gave up after {failed} tries in {_short(age)} ({limit})"
            return Decision(False, 0.0, reason, failed)
        return Decision(True, delay, f"{kind}: {error.reason}; try {failed + 1} in {delay:.1f}s", failed)


def _short(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
