"""The account's numbers tell a call's direction: a number bought since they were listed is looked up at once.

Data alone: a fake `GET /v1/numbers` (a list the test grows, a count of requests) and a fake clock; the hints
go through `workers.enrich.completed_event` as the job's would.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec

from contract.jobs import Receipt
from contract.wavix import Cdr, decode_cdr
from contract.webhooks import Kind
from workers.enrich import completed_event
from workers.fetch.hints import NUMBERS_REFRESH_S, OwnNumbers, gather

OURS, BOUGHT, CLIENT = "+14302287001", "+14302287099", "+33170363950"
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


class Wavix:
    """`GET /v1/numbers` as Wavix answers it (numbers without `+`), counting the requests."""

    def __init__(self, *numbers: str) -> None:
        self.numbers = list(numbers)
        self.requests = 0

    async def list_numbers(self) -> list[str]:
        self.requests += 1
        await asyncio.sleep(0)  # a request yields to the loop: concurrent jobs would all be waiting
        return [n.lstrip("+") for n in self.numbers]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cdr(from_: str, to: str, **fields: Any) -> Cdr:
    body = {"call_id": "call-1", "date": "2026-06-30T10:00:00Z", "from": from_, "to": to, "disposition": "answered",
            "duration": 6, **fields}
    return decode_cdr(msgspec.json.encode(body))


async def direction(numbers: OwnNumbers, record: Cdr, webhook: bytes = b"{}") -> str:
    """The published direction of `record`, its hints gathered as the job gathers them."""
    receipt = Receipt(kind=Kind.POST_CALL, call_id="call-1", event="completed", received_at_ms=0, body=webhook)
    hints = await gather(None, "test:", receipt, numbers, kept=[], cdr=record)  # type: ignore[arg-type]
    return completed_event(record, hints=hints, rules=frozenset(), now=NOW).data.direction


async def test_a_call_to_a_number_bought_since_the_numbers_were_listed_is_inbound() -> None:
    """The cache holds the numbers of an hour ago; a call without a direction in its webhook to a number bought
    since refreshes them at once and is published inbound, not `unknown` for up to an hour."""
    wavix, clock = Wavix(OURS), Clock()
    numbers = OwnNumbers(wavix.list_numbers, clock)
    assert await direction(numbers, cdr(OURS, CLIENT)) == "outbound"
    wavix.numbers.append(BOUGHT)
    clock.now += 120
    assert await direction(numbers, cdr(CLIENT, BOUGHT)) == "inbound"
    assert wavix.requests == 2


async def test_unknown_numbers_refresh_the_cache_at_most_once_a_minute() -> None:
    """Calls whose ends are none of ours ask for the numbers at most once per NUMBERS_REFRESH_S (60 s) since
    they were last listed, however many come, concurrently or not; calls the webhook, the CDR or the cached
    numbers already place ask nothing."""
    wavix, clock = Wavix(OURS), Clock()
    numbers = OwnNumbers(wavix.list_numbers, clock)
    strangers = cdr("+442079460000", CLIENT)
    assert await direction(numbers, strangers) == "unknown" and wavix.requests == 1  # listed just now
    clock.now += NUMBERS_REFRESH_S
    assert await asyncio.gather(*(direction(numbers, strangers) for _ in range(20))) == ["unknown"] * 20
    assert wavix.requests == 2
    clock.now += NUMBERS_REFRESH_S - 1
    assert await direction(numbers, strangers) == "unknown" and wavix.requests == 2
    assert await direction(numbers, cdr(OURS, CLIENT)) == "outbound"
    assert await direction(numbers, strangers, webhook=b'{"direction": "inbound"}') == "inbound"
    assert await direction(numbers, cdr(CLIENT, "+442079460000", direction="outbound")) == "outbound"
    assert wavix.requests == 2
    clock.now += 1
    assert await direction(numbers, strangers) == "unknown" and wavix.requests == 3
