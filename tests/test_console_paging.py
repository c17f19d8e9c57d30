"""Pagination of the console's lists (issue #23: `/calls` with 460 calls was one 21,000 px page), in Chromium.

The calls are indexed as the worker indexes them (tests/helpers/console.py); the dead letters are written by
workers/deadletter.py as the worker writes them.
"""

from __future__ import annotations

from playwright.async_api import Page

from contract.jobs import PROCESS_CALL
from sandbox.config import SandboxConfig
from tests.helpers.console import console_page, index_calls, shot
from tests.pipeline import pipeline
from tests.test_console_browser import _cleanup
from workers.deadletter import dead_letter

MAX_HEIGHT_PX = 4000


async def _walk(page: Page, row: str, key: str) -> list[str]:
    """Every row's `key` attribute, page after page through the `next` links, checking each page's height."""
    seen: list[str] = []
    while True:
        height = await page.evaluate("document.documentElement.scrollHeight")
        assert height < MAX_HEIGHT_PX, f"{page.url} is {height} px tall"
        rows = page.locator(row)
        seen += [str(await rows.nth(i).get_attribute(key)) for i in range(await rows.count())]
        following = page.locator("nav.pager a.next").first
        if not await following.count():
            return seen
        await following.click()


async def test_460_calls_are_pages_of_at_most_50_and_every_call_is_on_one() -> None:
    """With 460 calls in the window the calls page is a short page of 50 with a pager; following `next` shows
    each call exactly once, newest first, over 10 pages, and the filters stay in the pager's links."""
    async with pipeline(SandboxConfig(seed=3)) as p:
        made = await index_calls(p.redis, p.settings.key_prefix, 460)
        try:
            async with console_page(p, "/calls?minutes=60") as (page, _):
                assert await page.locator("tr.call").count() == 50
                assert "of 460" in await page.inner_text("nav.pager >> nth=0")
                await shot(page, "calls-paged")
                seen = await _walk(page, "tr.call", "data-call")
                assert seen == [c.call_id for c in made]
                assert "minutes=60" in page.url and "page=10" in page.url
        finally:
            await _cleanup(p)


async def test_dead_letters_are_paged_too() -> None:
    """120 dead letters are listed 50 a page, newest first, each once; a page past the end shows the last one."""
    async with pipeline(SandboxConfig(seed=3)) as p:
        ids = [await dead_letter(p.redis, p.settings.dead_letter_stream, kind=PROCESS_CALL, reason=f"test {i}",
                                 attempts=3, payload=b"\x80", call_id=f"CA-{i}") for i in range(120)]
        try:
            async with console_page(p, "/dead-letters") as (page, url):
                assert await page.locator("tr.letter").count() == 50
                seen = await _walk(page, "tr.letter", "data-id")
                assert seen == list(reversed(ids)), "newest first, each once"
                await page.goto(f"{url}/dead-letters?page=99")
                assert await page.locator("tr.letter").count() == 20
        finally:
            await _cleanup(p)
