"""What the console's browser tests share: a logged-in Chromium page, screenshots, and calls written to the index
exactly as the worker writes them (workers/operate/record.py's Writer), for lists longer than a pipeline run
makes quickly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from playwright.async_api import Page
from redis.asyncio import Redis

from console.app import ConsoleOptions
from contract.record import CallSummary
from tests.pipeline import Pipeline
from tests.test_console_browser import ARTIFACTS, CONSOLE_TOKEN, chromium, served
from workers.operate import record


async def log_in(page: Page, url: str, path: str = "/") -> None:
    await page.goto(f"{url}{path}")
    await page.fill("#token", CONSOLE_TOKEN)
    await page.click("#login")
    assert "/login" not in page.url, page.url


@asynccontextmanager
async def served_with(p: Pipeline, options: ConsoleOptions, names: tuple[str, ...] = ("redis",)) -> AsyncIterator[str]:
    """tests/test_console_browser.py's `served`, with any ConsoleOptions (thresholds, refresh)."""
    async with served(p, options=options, names=names) as url:
        yield url


@asynccontextmanager
async def console_page(p: Pipeline, path: str = "/", options: ConsoleOptions | None = None,
                       names: tuple[str, ...] = ("redis",)) -> AsyncIterator[tuple[Page, str]]:
    """The console served on `p`'s settings (actions on unless `options` say), and a Chromium page logged in at
    `path`."""
    chosen = options or ConsoleOptions(token=CONSOLE_TOKEN, allow_actions=True)
    async with served_with(p, chosen, names) as url, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, url, path)
        yield page, url


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def index_calls(redis: Redis, key_prefix: str, count: int, *, outcome: str = "answered_human",
                      spacing_ms: int = 1000) -> list[CallSummary]:
    """`count` calls indexed as the worker indexes them (one summary each), one `spacing_ms` apart, newest now."""
    writer = record.Writer(redis, key_prefix, ttl_s=3600)
    now = time.time_ns() // 1_000_000
    made = []
    for i in range(count):
        summary = CallSummary(call_id=f"CA-{key_prefix[-9:-1]}-{i:04d}", at_ms=now - i * spacing_ms, outcome=outcome,
                              direction="inbound", from_number=f"+4420{i:07d}", to_number="+12015550100",
                              published_at_ms=now - i * spacing_ms + 150)
        notes = record.Notes(summary.call_id, summary.at_ms)
        notes.summary = summary
        await writer.flush(notes)
        made.append(summary)
    return made


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 15.0) -> None:
    """Returns once `check()` is true; fails the test if it is not within `within_s`."""
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)
