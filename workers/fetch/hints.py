"""Hints: what Wavix told us about a call outside its CDR, gathered so arrival order cannot change an event.

    every webhook of the call  (the receiver keeps them in `{KEY_PREFIX}webhooks:{call_id}`, one LRANGE)
    + the CDR list's `type`    (a call found by reconciliation or backfill carries it in its job)
    + the account's numbers    (`GET /v1/numbers` with the call's account's key, cached for NUMBERS_TTL_S per
                                account in the process: workers/fetch/accounts.py)
    + the call's account       (its job's `Receipt.account`: in every event)
    -> `workers.enrich.CallHints`

The job reads the whole list each time it runs, so the completed and the transcript events of one call
see the same webhooks, whichever of them came first and whichever job ran first. The numbers cost one
request per process per hour, and one more, at most every NUMBERS_REFRESH_S, when a call that only the numbers
can place has neither end among them (a number bought since: without it, its calls were `unknown` for up
to an hour); when Wavix cannot list them (403 without the `numbers:read` scope, an
outage) the cache stays empty for NUMBERS_RETRY_S and direction falls back to the other sources.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import cast

import msgspec
from redis.asyncio import Redis

from contract import logs
from contract.events import FoundBy
from contract.jobs import Receipt, job_deserializer, receipt_from
from contract.values import party
from contract.wavix import Cdr
from contract.webhooks import Kind, WebhookFacts, facts, webhooks_key
from workers.enrich import CallHints, hints_from, numbers_unknown
from workers.retry import CallError

log = logs.get("workers.fetch.hints")

NUMBERS_TTL_S = 3600.0
NUMBERS_RETRY_S = 300.0
NUMBERS_REFRESH_S = 60.0  # the soonest a call with an unknown number asks for them again
_FOUND_BY = {"webhook": "webhook", "reconcile": "reconcile", "backfill": "backfill"}


class OwnNumbers:
    """The account's numbers in E.164, fetched once per `NUMBERS_TTL_S` per process, or sooner on `refresh()`;
    one request at a time, however many jobs ask together."""

    def __init__(self, fetch: Callable[[], Awaitable[list[str]]], clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._numbers: frozenset[str] = frozenset()
        self._due = 0.0  # when `get` asks again
        self._soonest = 0.0  # when `refresh` may ask again
        self._lock = asyncio.Lock()

    async def get(self) -> frozenset[str]:
        return await self._fetch_after(lambda: self._due)

    async def refresh(self) -> frozenset[str]:
        """Asks Wavix again unless it was asked within NUMBERS_REFRESH_S (or failed within NUMBERS_RETRY_S)."""
        return await self._fetch_after(lambda: self._soonest)

    async def _fetch_after(self, when: Callable[[], float]) -> frozenset[str]:
        if self._clock() < when():
            return self._numbers
        async with self._lock:
            if self._clock() < when():  # another job fetched while this one waited
                return self._numbers
            try:
                raw = await self._fetch()
            except CallError as e:
                log.warning("numbers.unavailable", reason=e.reason)
                self._due = self._soonest = self._clock() + NUMBERS_RETRY_S
                return self._numbers
            self._numbers = frozenset(n for n in (party(r).number for r in raw) if n)
            self._due, self._soonest = self._clock() + NUMBERS_TTL_S, self._clock() + NUMBERS_REFRESH_S
            return self._numbers


async def kept_receipts(redis: Redis, key_prefix: str, call_id: str) -> list[Receipt]:
    """Every kept webhook of the call (`call_id`: its id under its account, `Receipt.key`), oldest first; an
    unreadable entry is skipped with a warning."""
    entries: list[bytes] = await redis.lrange(webhooks_key(key_prefix, call_id), 0, -1)  # type: ignore[misc]
    return receipts_of(entries, call_id)


def receipts_of(entries: list[bytes], call_id: str) -> list[Receipt]:
    """The kept webhooks from the list's raw entries (read in a job's own pipeline: workers/process.py)."""
    receipts: list[Receipt] = []
    for entry in entries:
        try:
            receipts.append(receipt_from(job_deserializer(entry)))
        except Exception:  # one broken entry must not hide the others
            log.warning("webhooks.unreadable_entry", call_id=call_id)
    return receipts


async def announcement(redis: Redis, key_prefix: str, call_id: str) -> str | None:
    """"completed" or "failed" when a kept transcription webhook said so ("completed" wins)."""
    return announced_in(await kept_receipts(redis, key_prefix, call_id))


def announced_in(receipts: list[Receipt]) -> str | None:
    said = {r.event for r in receipts if r.kind is Kind.TRANSCRIPTION}
    return "completed" if "completed" in said else ("failed" if "failed" in said else None)


async def gather(redis: Redis, key_prefix: str, receipt: Receipt, numbers: OwnNumbers,
                 kept: list[Receipt] | None = None, cdr: Cdr | None = None) -> CallHints:
    """The call's hints from its webhooks (`kept`, when the job read them already), its job and the account's
    numbers, asked again when only they can place the `cdr` and neither of its ends is among them."""
    if kept is None:
        kept = await kept_receipts(redis, key_prefix, receipt.key)
    said: list[WebhookFacts] = [facts(r.body) for r in kept]
    said.append(facts(receipt.body))  # the job's own body, even if the list expired or was trimmed
    found_by = cast(FoundBy, _FOUND_BY.get(receipt.source, "webhook"))
    hints = hints_from(said, listed_type=receipt.listed_type, own_numbers=await numbers.get(), found_by=found_by,
                       account=receipt.account)
    if cdr is not None and numbers_unknown(cdr, hints):
        hints = msgspec.structs.replace(hints, own_numbers=await numbers.refresh())
    return hints
