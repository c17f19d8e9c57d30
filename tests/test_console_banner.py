"""The overview's banner and auto-refresh (issue #23), in headless Chromium against the real worker's state.

The banner says what is wrong now, on every page, with links to the views that show it: a destination failing
(crm answering 503), the queue's oldest due job older than its threshold, no event built for a while although
calls wait in the queue. Auto-refresh reloads the overview and the lists until the operator turns it off.
Screenshots land in tests/artifacts/console/.
"""

from __future__ import annotations

import time
from pathlib import Path

from playwright.async_api import Page

from console.app import ConsoleOptions
from console.web import Thresholds
from tests.helpers.console import console_page, shot, until
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import routed
from tests.test_console_browser import CONSOLE_TOKEN

NAMES = ("events", "crm")


async def _alarms(page: Page) -> dict[str, str]:
    """The banner's alarms by what they are about, after reloading the page."""
    await page.reload()
    alarms = page.locator("#banner p.alarm")
    return {str(await alarms.nth(i).get_attribute("data-what")): await alarms.nth(i).inner_text()
            for i in range(await alarms.count())}


async def test_the_banner_names_a_failing_destination_a_stuck_queue_and_missing_events(tmp_path: Path) -> None:
    """Nothing wrong: no banner. crm answering 503: every page's banner says crm is failing, and its link opens
    the dead letters filtered to crm. Calls queued with no worker running: the banner says the queue's oldest job
    waits too long and that no event was built while calls wait, each past its threshold (1 s here)."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver, crm="    retry: {schedule: [50ms]}\n") as p:  # 2 tries, then a dead letter
        await p.place_and_send(2)
        await p.run_worker()
        options = ConsoleOptions(token=CONSOLE_TOKEN, allow_actions=True,
                                 thresholds=Thresholds(queue_age_s=1, quiet_s=1))
        async with console_page(p, "/", options, NAMES) as (page, url):
            assert await page.locator("#banner").count() == 0, "a healthy system raises nothing"

            receiver.status = 503
            await p.place_and_send(1)
            await p.run_worker()
            for path in ("/", "/calls", "/dead-letters", "/destinations"):
                await page.goto(url + path)
                assert "Destination crm is failing" in (await _alarms(page)).get("destination", ""), path
            await shot(page, "banner-destination")
            await page.click("#banner a:has-text('its dead letters')")
            assert "destination=crm" in page.url
            assert await page.input_value("#f-destination") == "crm"

            queued_at = time.time()
            await p.place_and_send(1)  # no worker runs: the call waits in the queue

            async def stuck() -> bool:
                return {"queue", "quiet"} <= set(await _alarms(page))

            await until(stuck)
            alarms = await _alarms(page)
            assert "due in the queue and the oldest has waited" in alarms["queue"]
            assert "1 call(s) wait in the queue" in alarms["quiet"]
            assert time.time() - queued_at >= 1
            await shot(page, "banner-stuck")


async def test_auto_refresh_reloads_the_overview_until_turned_off(tmp_path: Path) -> None:
    """With a 2 s refresh the overview reloads itself; "turn off" stops it on every page for this browser (no
    refresh directive left) and returns to the same page; "turn on" brings it back."""
    async with routed(tmp_path, WebhookReceiver()) as p:
        options = ConsoleOptions(token=CONSOLE_TOKEN, refresh_seconds=2)
        async with console_page(p, "/calls?minutes=30", options, NAMES) as (page, url):
            refresh = page.locator("meta[http-equiv=refresh]")
            assert await refresh.get_attribute("content") == "2"
            async with page.expect_event("load", timeout=10_000):
                pass  # the page reloads itself, with no click
            await page.click("#refresh-toggle")
            assert page.url.endswith("/calls?minutes=30")
            assert await page.get_attribute("#refresh-toggle", "data-on") == "0"
            for path in ("/", "/calls", "/dead-letters", "/destinations"):
                await page.goto(url + path)
                assert await refresh.count() == 0, path
            await shot(page, "refresh-off")
            await page.click("#refresh-toggle")
            assert await refresh.get_attribute("content") == "2" and page.url.endswith("/destinations")
