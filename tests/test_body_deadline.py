"""The webhook body's deadline (service/webhooks.py `_within`): the body in time is returned, a late one is a
TimeoutError (the 408), and a cancellation from outside stays a cancellation, never a 408."""

from __future__ import annotations

import asyncio

import pytest

from service.webhooks import _within


async def _body(after: asyncio.Event) -> bytes:
    await after.wait()
    return b"{}"


async def test_a_body_that_arrives_in_time_is_returned_and_leaves_no_timer_behind() -> None:
    arrived = asyncio.Event()
    arrived.set()
    assert await _within(0.05, _body(arrived)) == b"{}"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.wait_for(asyncio.sleep(0.1), timeout=1)  # past the deadline: the timer did not fire on us


async def test_a_body_that_never_comes_is_a_timeout_after_the_deadline() -> None:
    with pytest.raises(TimeoutError):
        await _within(0.05, _body(asyncio.Event()))
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0, "the deadline's own cancel is taken back"


async def test_a_cancellation_from_outside_is_not_turned_into_a_timeout() -> None:
    reading = asyncio.create_task(_within(5, _body(asyncio.Event())))
    await asyncio.sleep(0)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
