"""The delivery retry schedule (workers/retry.py `Schedule`) and how the routing file sets it: pure, no clock.

Delays are drawn from a seeded `random.Random`; ages are passed in, so a day of retries runs in microseconds.
"""

from __future__ import annotations

import random

import pytest

from workers.deliver.route import RouteError, parse_destinations
from workers.retry import DELIVERY_SCHEDULE, Permanent, Schedule, Transient, parse_duration

HOUR = 3600.0


def run(schedule: Schedule, rng: random.Random, *, down_for: float) -> tuple[int, float | None]:
    """Tries against a destination down for `down_for` s: (tries made, time of the landing try or None)."""
    clock, failed = 0.0, 0
    while True:
        if clock >= down_for:
            return failed + 1, clock
        failed += 1
        decision = schedule.decide(Transient("crm: POST -> 503"), failed, clock, rng)
        if not decision.retry:
            return failed, None
        clock += decision.delay


def test_default_schedule_spans_a_day_with_jitter() -> None:
    """Svix's waits (5s, 5m, 30m, 2h, 5h, 10h, 10h): 8 tries, the last ~27.6 h after the first, each wait
    within +-10 % of its step; with another seed the waits differ."""
    schedule, rng = Schedule(), random.Random(7)
    assert schedule.delays == DELIVERY_SCHEDULE == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    waits = [schedule.decide(Transient("x"), n, 0.0, rng).delay for n in range(1, 8)]
    assert all(0.9 * d <= w <= 1.1 * d for w, d in zip(waits, DELIVERY_SCHEDULE, strict=True)), waits
    assert 0.9 * 27.6 * HOUR <= sum(waits) <= 1.1 * 27.6 * HOUR
    assert waits != [schedule.decide(Transient("x"), n, 0.0, random.Random(8)).delay for n in range(1, 8)]
    given_up = schedule.decide(Transient("crm: POST -> 503"), 8, 28 * HOUR, rng)
    assert not given_up.retry and "gave up after 8 tries" in given_up.reason


@pytest.mark.parametrize("down_h, lands", [(0.0, True), (1.0, True), (10.0, True), (24.0, True), (40.0, False)])
def test_outages_shorter_than_the_schedule_deliver(down_h: float, lands: bool) -> None:
    """Down for up to a day (lunch, a night, a day): the delivery lands; down for 40 h: it gives up (8 tries)."""
    tries, landed = run(Schedule(), random.Random(1), down_for=down_h * HOUR)
    assert (landed is not None) is lands
    assert tries <= 8
    if landed is not None:
        assert landed >= down_h * HOUR


def test_max_age_repeats_the_last_wait_until_the_age() -> None:
    """`max_age: 2d` keeps trying every ~10 h after the listed waits, and gives up once the next try would
    start past two days; a Permanent error is never retried."""
    schedule = Schedule(max_age=2 * 86400)
    tries, landed = run(schedule, random.Random(3), down_for=45 * HOUR)
    assert landed is not None and 45 * HOUR <= landed <= 48 * HOUR and tries > 8
    assert run(schedule, random.Random(3), down_for=49 * HOUR)[1] is None
    assert not schedule.decide(Permanent("crm: POST -> 410"), 1, 0.0).retry


def test_retry_after_is_never_beaten_by_the_schedule_nor_the_other_way() -> None:
    """A Retry-After longer than the step is honoured; a shorter one does not make the try come sooner."""
    schedule = Schedule(jitter=0.0)
    assert schedule.decide(Transient("429", retry_after=600.0), 1, 0.0).delay == 600.0
    assert schedule.decide(Transient("429", retry_after=1.0), 2, 0.0).delay == 300.0


def test_durations_and_schedules_from_the_routing_file() -> None:
    """`retry: {schedule: [...], max_age: ...}` and `max_per_second` are read per destination; bad values name
    the line; a max_age that would need more tries than the worker allows is refused."""
    assert [parse_duration(t) for t in ("5s", "5m", "2h", "2d", "1h30m", "250ms", 90)] == [
        5, 300, 7200, 172800, 5400, 0.25, 90]
    text = """destinations:
  - name: crm
    url: http://crm.example/hooks
    secret: s3cret
    retry: {schedule: [1m, 10m, 1h], max_age: 1d}
    max_per_second: 2.5
  - name: events
    url: redis://127.0.0.1:6379/0?stream=s
"""
    crm, events = parse_destinations(text, {})
    assert crm.retry == Schedule(delays=(60.0, 600.0, 3600.0), max_age=86400.0) and crm.max_per_second == 2.5
    assert events.retry == Schedule() and events.max_per_second == 0.0
    with pytest.raises(RouteError, match=r"sinks.yaml:5: destination \"crm\": retry: not a duration: '5 minutes'"):
        parse_destinations(text.replace("1m, 10m", "5 minutes, 10m"), {})
    with pytest.raises(RouteError, match=r"sinks.yaml:5: .*max_age allows more than 30 tries"):
        parse_destinations(text.replace("max_age: 1d", "max_age: 30d"), {})
    with pytest.raises(RouteError, match=r'sinks.yaml:6: .*"max_per_second" must be a number above 0'):
        parse_destinations(text.replace("2.5", "0"), {})
    with pytest.raises(RouteError, match='unknown field "schedul"'):
        parse_destinations(text.replace("schedule:", "schedul:"), {})
