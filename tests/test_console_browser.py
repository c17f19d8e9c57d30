"""The console in a real browser: Debian's headless Chromium driven by Playwright against the served app.

Log in, open every page, filter calls, open a timeline, replay a dead letter from the page and see it
delivered by the real worker. Screenshots land in tests/artifacts/console/ (ignored by git).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

from console.app import ConsoleOptions, create_app
from contract.events import COMPLETED, encode_event
from contract.jobs import DELIVER
from sandbox.config import SandboxConfig
from tests.pipeline import Pipeline, by_type, pipeline
from workers.deadletter import dead_letter
from workers.deliver.delivery import Delivery, encode_delivery
from workers.operate import observe
from workers.runtime.settings import worker_options

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).parent / "artifacts" / "console"
CONSOLE_TOKEN = "console-token-" + "z" * 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def served(p: Pipeline, allow_actions: bool = True, *, options: ConsoleOptions | None = None,
                 names: tuple[str, ...] = ("redis",)) -> AsyncIterator[str]:
    """The console on `p`'s settings in this loop (uvicorn), with `options` or the test token; its base URL."""
    port = _free_port()
    app = create_app(p.settings, options or ConsoleOptions(token=CONSOLE_TOKEN, allow_actions=allow_actions), names)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def _worker(p: Pipeline) -> None:
    observed = observe.options(worker_options(p.settings))
    await p.run_worker(functions=observed["functions"], on_startup=observed["on_startup"])


async def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def _cleanup(p: Pipeline) -> None:
    keys = [k async for k in p.redis.scan_iter(match=f"{p.settings.key_prefix}*", count=1000)]
    if keys:
        await p.redis.delete(*keys)


async def _dead_delivery(p: Pipeline) -> str:
    """A delivery dead-lettered for good: a copy of a published event under a new id, for the Redis stream."""
    event = next(iter(by_type(await p.events(), COMPLETED).values()))[0]
    copy = msgspec.structs.replace(event, id=str(uuid.uuid4()))
    delivery = Delivery(destination="redis", call_id=copy.subject, event_id=copy.id, event=encode_event(copy),
                        first_at_ms=int(time.time() * 1000))
    await dead_letter(p.redis, p.settings.dead_letter_stream, kind=DELIVER, reason="redis: refused (test)",
                      attempts=9, payload=encode_delivery(delivery), call_id=copy.subject)
    return copy.id


async def test_operator_logs_in_browses_filters_and_replays_a_dead_letter():
    """Every page opens after a login (and not before); the outcome filter keeps only that outcome; a call's
    timeline shows its webhooks and deliveries; Replay on a dead letter queues it and the worker delivers it."""
    async with pipeline(SandboxConfig(seed=21, transcript_share=0.0)) as p:
        calls, _ = await p.place_and_send(12, duplicates=0.3, on_call_events=True)
        await _worker(p)
        replayed_id = await _dead_delivery(p)
        try:
            async with served(p) as url, chromium() as browser:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(f"{url}/calls")
                assert "/login" in page.url  # no page without a login
                await page.fill("#token", "wrong-token-" + "q" * 10)
                await page.click("#login")
                assert await page.locator("#login-failed").count() == 1
                await page.fill("#token", CONSOLE_TOKEN)
                await page.click("#login")
                await page.goto(url + "/")
                assert await page.locator("#calls-per-minute rect").count() >= 1
                assert (await page.inner_text("#card-calls")).startswith(str(len(calls)))
                assert "1" in await page.inner_text("#card-dead")
                await _shot(page, "overview")

                await page.goto(f"{url}/calls")
                assert await page.locator("tr.call").count() == len(calls)
                outcome = await page.locator("tr.call").first.get_attribute("data-outcome")
                assert outcome
                await page.select_option("#outcome", outcome)
                await page.click("#apply")
                rows = page.locator("tr.call")
                kept = [await rows.nth(i).get_attribute("data-outcome") for i in range(await rows.count())]
                assert kept and set(kept) == {outcome} and "outcome=" in page.url
                await _shot(page, "calls-filtered")

                await rows.first.locator("a").click()
                assert await page.locator("tr.step[data-step=webhook]").count() >= 1
                assert await page.locator("tr.step[data-step=delivery]").count() >= 1
                assert COMPLETED in await page.inner_text("#events")
                await _shot(page, "call-timeline")

                await page.goto(f"{url}/destinations")
                assert "redis" in await page.inner_text("#destinations")
                await _shot(page, "destinations")

                await page.goto(f"{url}/dead-letters")
                assert await page.locator("tr.letter").count() == 1
                await _shot(page, "dead-letters")
                await page.click("button.replay")
                assert "queued deliver" in await page.inner_text("#done")
                assert await page.locator("tr.letter").count() == 0
                await _worker(p)
                delivered = [e.id for e in await p.events()]
                assert replayed_id in delivered
                await _shot(page, "dead-letters-replayed")
                content = await page.content()
                assert p.settings.wavix_api_key not in content and "token=" not in content
        finally:
            await _cleanup(p)
