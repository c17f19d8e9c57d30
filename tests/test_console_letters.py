"""Dead-letter filters and "replay / purge all matching (N)" behind a confirmation (issue #23), in Chromium.

Letters are written by workers/deadletter.py as the worker writes them; deliveries are copies of events the real
worker published, so a replay is delivered by the real worker. Screenshots land in tests/artifacts/console/.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import msgspec
from playwright.async_api import Page

from contract.events import COMPLETED, encode_event
from contract.jobs import DELIVER, PROCESS_CALL
from sandbox.config import SandboxConfig
from tests.helpers.console import console_page, shot, until
from tests.pipeline import Pipeline, by_type, pipeline
from tests.test_console_browser import _cleanup, _worker
from workers.deadletter import dead_letter
from workers.deliver.delivery import Delivery, encode_delivery


async def _dead_deliveries(p: Pipeline, count: int, reason: str) -> list[str]:
    """`count` deliveries to the pipeline's stream dead-lettered with `reason`: copies of a published event under
    new ids; returns the copies' event ids."""
    event = next(iter(by_type(await p.events(), COMPLETED).values()))[0]
    ids = []
    for _ in range(count):
        copy = msgspec.structs.replace(event, id=str(uuid.uuid4()))
        delivery = Delivery(destination="redis", call_id=copy.subject, event_id=copy.id, event=encode_event(copy),
                            first_at_ms=int(time.time() * 1000))
        await dead_letter(p.redis, p.settings.dead_letter_stream, kind=DELIVER, reason=reason, attempts=8,
                          payload=encode_delivery(delivery), call_id=copy.subject)
        ids.append(copy.id)
    return ids


async def _dead_jobs(p: Pipeline, count: int, reason: str) -> list[str]:
    return [await dead_letter(p.redis, p.settings.dead_letter_stream, kind=PROCESS_CALL, reason=reason, attempts=5,
                              payload=b"\x80", call_id=f"CA-dead-{i}") for i in range(count)]


async def _kinds(page: Page) -> list[str]:
    rows = page.locator("tr.letter")
    return [str(await rows.nth(i).get_attribute("data-kind")) for i in range(await rows.count())]


async def test_filter_then_replay_all_matching_after_a_confirmation_that_states_the_count() -> None:
    """Filtering by destination and reason keeps just those letters, and the page offers "Replay all matching (3)";
    the click opens a confirmation that states 3 and changes nothing; confirming replays those 3 (the worker
    delivers them) and leaves the other letters where they were."""
    async with pipeline(SandboxConfig(seed=41, transcript_share=0.0)) as p:
        await p.place_and_send(3)
        await _worker(p)
        refused = await _dead_deliveries(p, 3, "redis: refused (test)")
        await _dead_deliveries(p, 2, "redis: answered 410 (test)")
        await _dead_jobs(p, 2, "wavix: 500 (test)")
        try:
            async with console_page(p, "/dead-letters") as (page, _):
                assert await page.locator("tr.letter").count() == 7
                await page.fill("#f-destination", "redis")
                await page.fill("#f-reason", "REFUSED")
                await page.click("#f-apply")
                assert await page.locator("tr.letter").count() == 3
                assert await page.inner_text("#replay-all") == "Replay all matching (3)"
                await shot(page, "dead-letters-filtered")
                await page.click("#replay-all")
                assert await page.get_attribute("#confirm-count", "data-count") == "3"
                assert "Replay 3 dead letter(s)" in await page.inner_text("#confirm-button")
                assert len(await p.dead_letters()) == 7, "the confirmation itself changes nothing"
                await shot(page, "dead-letters-confirm-replay")
                await page.click("#confirm-button")
                assert "replayed 3 of the 3" in await page.inner_text("#done")
                assert await page.locator("tr.letter").count() == 0 and "reason=REFUSED" in page.url
                assert sorted(f[b"reason"].decode() for f in await p.dead_letters()) == \
                    ["redis: answered 410 (test)"] * 2 + ["wavix: 500 (test)"] * 2
                await _worker(p)
                assert set(refused) <= {e.id for e in await p.events()}
        finally:
            await _cleanup(p)


async def test_purge_all_matching_touches_only_what_was_counted() -> None:
    """Filtering by type and time keeps those letters; "Purge all matching (2)" asks first, Cancel deletes nothing,
    and a letter that fails after the count was read is not purged by the confirming click; a row's Purge asks
    too, for that one letter; a time that is not one is an error beside the form."""
    async with pipeline(SandboxConfig(seed=42, transcript_share=0.0)) as p:
        await p.place_and_send(2)
        await _worker(p)
        await _dead_jobs(p, 1, "wavix: 500 (old)")
        first_ms = time.time_ns() // 1_000_000

        async def later() -> bool:
            return time.time_ns() // 1_000_000 > first_ms + 1

        await until(later)
        since = datetime.fromtimestamp((first_ms + 1) / 1000, UTC).isoformat(timespec="milliseconds")
        await _dead_jobs(p, 2, "wavix: 500 (new)")
        await _dead_deliveries(p, 1, "redis: refused (new)")
        try:
            async with console_page(p, "/dead-letters") as (page, url):
                await page.select_option("#f-type", PROCESS_CALL)
                await page.fill("#f-since", since)
                await page.click("#f-apply")
                assert await _kinds(page) == [PROCESS_CALL] * 2
                await page.click("#purge-all")
                assert await page.get_attribute("#confirm-count", "data-count") == "2"
                await page.click("#cancel")
                assert len(await p.dead_letters()) == 4
                await page.click("#purge-all")
                await _dead_jobs(p, 1, "wavix: 500 (after the count)")
                await page.click("#confirm-button")
                assert "purged 2 of the 2" in await page.inner_text("#done")
                left = sorted(f[b"reason"].decode() for f in await p.dead_letters())
                assert left == ["redis: refused (new)", "wavix: 500 (after the count)", "wavix: 500 (old)"]

                await page.goto(f"{url}/dead-letters?reason=old")
                await page.click("a.purge")
                assert await page.get_attribute("#confirm-count", "data-count") == "1"
                await page.click("#confirm-button")
                assert len(await p.dead_letters()) == 2

                await page.goto(f"{url}/dead-letters")
                await page.fill("#f-since", "yesterday")
                await page.click("#f-apply")
                assert "since: not a time" in await page.inner_text("p.form-error")
                await shot(page, "dead-letters-form-error")
        finally:
            await _cleanup(p)
