"""Search in the console (issue #23), driven in headless Chromium against calls the real worker processed.

The header's search box takes a call id, an event id or a phone number: one exact hit opens the call's
page, a phone number lists every call to or from it, and a query that matches nothing says so.
Screenshots land in tests/artifacts/console/.
"""

from __future__ import annotations

from contract.events import COMPLETED
from sandbox.config import SandboxConfig
from tests.helpers.console import console_page, shot
from tests.pipeline import by_type, pipeline
from tests.test_console_browser import _cleanup, _worker


async def test_search_finds_a_call_by_its_id_an_event_id_or_a_phone_number() -> None:
    """Typing a call id in the header's box opens that call's page; an event id opens the page of the call that
    made it; part of a phone number lists exactly the calls from or to a number holding those digits, each
    linking to its call; a query that matches nothing says how it was read and that nothing matched."""
    async with pipeline(SandboxConfig(seed=33, transcript_share=0.0)) as p:
        calls, _ = await p.place_and_send(8)
        await _worker(p)
        completed = by_type(await p.events(), COMPLETED)
        call_id, (event, *_) = next(iter(completed.items()))
        try:
            async with console_page(p) as (page, _):
                await page.fill("#q", call_id)
                await page.press("#q", "Enter")
                await page.wait_for_url(f"**/calls/{call_id}")
                assert call_id in await page.inner_text("h1")

                await page.fill("#q", event.id)
                await page.press("#q", "Enter")
                await page.wait_for_url(f"**/calls/{call_id}")

                number = event.data.to.number if event.data.direction == "outbound" else event.data.from_.number
                assert number
                part = number[-7:]
                await page.fill("#q", part)
                await page.press("#q", "Enter")
                await page.wait_for_url("**/search?q=*")
                rows = page.locator("#results tr.call")
                listed = {await rows.nth(i).get_attribute("data-call") for i in range(await rows.count())}
                expected = {c.call_id for c in calls if part in f"{c.from_} {c.to}"}
                assert call_id in listed and listed == expected, (listed, expected)
                assert "read as phone number" in await page.inner_text("#read-as")
                await shot(page, "search-phone")
                await rows.first.locator("a").click()
                await page.wait_for_url("**/calls/*")

                await page.fill("#q", "no-such-call-anywhere")
                await page.press("#q", "Enter")
                await page.wait_for_url("**/search?q=*")
                said = await page.inner_text("#read-as")
                assert "part of a call id" in said and "nothing" in said
        finally:
            await _cleanup(p)
