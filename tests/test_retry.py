"""The retry policy: which errors retry, how long they wait, and when they give up."""

from __future__ import annotations

import random

import pytest
from arq import Retry

from workers.retry import (
    Backoff,
    CallError,
    GiveUp,
    NotProvisioned,
    NotYet,
    Permanent,
    RetryPolicy,
    TranscriptNotReady,
    Transient,
)


def policy(seed: int = 7) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(seed))


@pytest.mark.parametrize("error", [Permanent("GET /v1/cdrs/{call_id} -> 401: Unauthorized"), NotProvisioned("403")])
def test_permanent_errors_never_retry(error: CallError) -> None:
    """Permanent (401, 4xx) and NotProvisioned give up on the very first attempt, with a GiveUp to dead-letter."""
    decision = policy().decide(error, attempt=1)
    assert not decision.retry and decision.delay == 0.0
    outcome = policy().retry_or_give_up(error, attempt=1)
    assert isinstance(outcome, GiveUp)
    assert outcome.error is error and outcome.attempts == 1
    assert "not retryable" in outcome.reason and error.reason in outcome.reason


def test_unclassified_call_error_is_not_retried() -> None:
    """A CallError nobody classified is not looped on: only the named retryable classes retry."""
    assert not policy().decide(CallError("odd"), attempt=1).retry


def test_transient_delay_is_full_jitter_within_floor_and_capped_exponential_ceiling() -> None:
    """Each transient delay lies in [floor, min(cap, base*2**(n-1))], so it grows with attempts and stays capped."""
    rule = Backoff(base=1.0, cap=30.0, max_attempts=1000, floor=0.5)
    p = RetryPolicy(transient=rule, rng=random.Random(1))
    for attempt in range(1, 200):
        for _ in range(20):
            d = p.decide(Transient("503"), attempt)
            assert d.retry
            assert 0.5 <= d.delay <= min(30.0, 2.0 ** (attempt - 1)) + 1e-9
    assert rule.ceiling(1) == 1.0 and rule.ceiling(4) == 8.0 and rule.ceiling(6) == 30.0
    assert rule.ceiling(10_000) == 30.0  # no overflow at absurd attempt numbers


def test_jitter_spreads_delays_over_the_whole_range() -> None:
    """Full jitter: delays for one attempt are spread out, not one fixed value (no thundering herd)."""
    p = RetryPolicy(transient=Backoff(base=10.0, cap=10.0, max_attempts=100), rng=random.Random(3))
    delays = [p.decide(Transient("timeout"), attempt=2).delay for _ in range(500)]
    assert min(delays) < 2.5 and max(delays) > 7.5
    assert len(set(delays)) > 400


def test_seeded_random_source_makes_delays_repeatable() -> None:
    """Two policies with the same seed decide the same delays; another seed differs (tests can pin values)."""
    a = [policy(42).decide(Transient("x"), n).delay for n in range(1, 10)]
    b = [policy(42).decide(Transient("x"), n).delay for n in range(1, 10)]
    c = [policy(43).decide(Transient("x"), n).delay for n in range(1, 10)]
    assert a == b and a != c


def test_retry_after_is_honoured_with_small_spread() -> None:
    """With Retry-After, the delay is at least what the server asked, plus at most `retry_after_jitter`."""
    p = policy()
    for _ in range(100):
        delay = p.decide(Transient("429", retry_after=42.0), attempt=1).delay
        assert 42.0 <= delay <= 43.0
    # a server's Retry-After overrides the small early backoff ceiling (1 s at attempt 1)
    assert p.decide(Transient("429", retry_after=5.0), attempt=1).delay >= 5.0


def test_retry_after_is_capped() -> None:
    """A huge Retry-After (an hour) is capped at `retry_after_cap`, so a job is never parked for ever."""
    p = RetryPolicy(retry_after_cap=120.0, rng=random.Random(0))
    assert p.decide(Transient("503", retry_after=3600.0), attempt=1).delay == 120.0


def test_negative_retry_after_does_not_make_negative_delays() -> None:
    """A Retry-After in the past counts as zero: arq never gets a negative defer."""
    assert 0.0 <= policy().decide(Transient("429", retry_after=-10.0), attempt=1).delay <= 1.0


def test_not_yet_retries_a_few_times_then_gives_up() -> None:
    """A CDR 404 (NotYet) retries on tries 1-4 and gives up on try 5 with a reason naming the count."""
    p = policy()
    error = NotYet("GET /v1/cdr/{uuid} -> 404: Record not found")
    assert all(p.decide(error, n).retry for n in range(1, 5))
    final = p.decide(error, 5)
    assert not final.retry and "gave up after 5 attempts" in final.reason
    assert all(2.0 <= p.decide(error, n).delay <= 60.0 for n in range(1, 5))


def test_transient_gives_up_after_its_limit() -> None:
    """Transient errors retry up to `transient.max_attempts` tries, then give up."""
    p = policy()
    limit = p.transient.max_attempts
    assert p.decide(Transient("503"), limit - 1).retry
    assert not p.decide(Transient("503"), limit).retry


def test_transcript_not_ready_waits_longer_than_a_cdr() -> None:
    """A missing transcript (ready 'within 10 minutes') waits at least its 30 s floor and retries past 5 tries."""
    p = policy()
    error = TranscriptNotReady("GET /v1/cdrs/{call_id}/transcription -> 404")
    assert p.decide(error, 6).retry
    assert all(30.0 <= p.decide(error, n).delay <= 180.0 for n in range(1, 15))


def test_transcript_wait_limits_elapsed_time() -> None:
    """`for_transcript_wait(600)` gives up once the next try would start more than 600 s after the work began."""
    p = RetryPolicy.for_transcript_wait(600, rng=random.Random(5))
    error = TranscriptNotReady("404")
    assert p.decide(error, 2, elapsed=100.0).retry
    late = p.decide(error, 2, elapsed=590.0)  # any delay (>= 30 s floor) would cross 600 s
    assert not late.retry and "limit 600s" in late.reason
    assert p.decide(error, 2).retry  # without elapsed, only the attempt limit applies


def test_retry_or_give_up_returns_arq_retry_with_the_decided_delay() -> None:
    """A retry decision becomes `arq.Retry` whose defer equals the decided delay (same seed, same draw)."""
    error = Transient("502", status=502)
    delay = policy(9).decide(error, 3).delay
    outcome = policy(9).retry_or_give_up(error, 3)
    assert isinstance(outcome, Retry)
    assert outcome.defer_score == round(delay * 1000)


def test_give_up_decision_has_no_arq_retry() -> None:
    """Turning a give-up into arq.Retry is a bug and raises, rather than silently retrying."""
    with pytest.raises(ValueError):
        policy().decide(Permanent("401"), 1).to_arq()


def test_default_limits_fit_arq_max_tries_of_25() -> None:
    """Every default rule gives up before a worker with max_tries=25 would drop the job without dead-lettering."""
    assert RetryPolicy().longest < 25
