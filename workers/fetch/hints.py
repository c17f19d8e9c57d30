"""Hints: what Wavix told us about a call outside its CDR, gathered so arrival order cannot change an event.

    every webhook of the call  (the receiver keeps them in `{KEY_PREFIX}webhooks:{call_id}`, one LRANGE)
    + the CDR list's `type`    (a call found by reconciliation or backfill carries it in its job)
    + the account's numbers    (`GET /v1/numbers`, cached for NUMBERS_TTL_S in the process)
    -> `workers.enrich.CallHints`

The job reads the whole list each time it runs, so the completed and the transcript events of one call
see the same webhooks, whichever of them came first and whichever job ran first. The numbers cost one
request per process per hour; when Wavix cannot list them (403 without the `numbers:read` scope, an
outage) the cache stays empty for NUMBERS_RETRY_S and direction falls back to the other sources.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import cast

from redis.asyncio import Redis

from contract import logs
from contract.events import FoundBy
from contract.jobs import Receipt, job_deserializer, receipt_from
from contract.values import party
from contract.webhooks import Kind, WebhookFacts, facts, webhooks_key
from workers.enrich import CallHints, hints_from
from workers.retry import CallError

log = logs.get("workers.fetch.hints")

NUMBERS_TTL_S = 3600.0
NUMBERS_RETRY_S = 300.0
_FOUND_BY = {"webhook": "webhook", "reconcile": "reconcile", "backfill": "backfill"}


class OwnNumbers:
    """The account's numbers in E.164, fetched at most once per `NUMBERS_TTL_S` per process."""

    def __init__(self, fetch: Callable[[], Awaitable[list[str]]], clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._numbers: frozenset[str] = frozenset()
        self._due = 0.0

    async def get(self) -> frozenset[str]:
        if self._clock() < self._due:
            return self._numbers
        try:
            raw = await self._fetch()
        except CallError as e:
            log.warning("numbers.unavailable", reason=e.reason)
            self._due = self._clock() + NUMBERS_RETRY_S
            return self._numbers
        self._numbers = frozenset(n for n in (party(r).number for r in raw) if n)
        self._due = self._clock() + NUMBERS_TTL_S
        return self._numbers


async def kept_receipts(redis: Redis, key_prefix: str, call_id: str) -> list[Receipt]:
    """Every kept webhook of the call, oldest first; an unreadable entry is skipped with a warning."""
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
                 kept: list[Receipt] | None = None) -> CallHints:
    """The call's hints from its webhooks (`kept`, when the job read them already), its job and the account's
    numbers."""
    if kept is None:
        kept = await kept_receipts(redis, key_prefix, receipt.call_id)
    said: list[WebhookFacts] = [facts(r.body) for r in kept]
    said.append(facts(receipt.body))  # the job's own body, even if the list expired or was trimmed
    found_by = cast(FoundBy, _FOUND_BY.get(receipt.source, "webhook"))
    return hints_from(said, listed_type=receipt.listed_type, own_numbers=await numbers.get(), found_by=found_by)
