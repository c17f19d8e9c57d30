"""The console and privacy (issue #25), in a real browser on a real pipeline: with CONSOLE_REDACT every page shows
numbers masked (country code and last two digits) and never in clear, whatever carries them (summary, webhook
bodies in the timeline, event payloads); a call erased by `wavix-events forget` says so on its page."""

from __future__ import annotations

import re

from contract.privacy import mask_number
from sandbox.config import SandboxConfig
from tests.helpers.console import console_page
from tests.pipeline import pipeline
from tests.test_console_browser import _cleanup, _worker
from tests.test_erasure import forget


def digits(number: str) -> str:
    return re.sub(r"\D", "", number)


async def test_console_redact_masks_every_number_on_every_page() -> None:
    """CONSOLE_REDACT=true: the overview, the calls list, a call's page, its deliveries and a search by number hold
    none of the calls' numbers in clear; the list shows them masked. Search by digits still finds the call."""
    async with pipeline(SandboxConfig(seed=33, transcript_share=0.0)) as p:
        calls, _ = await p.place_and_send(4)
        await _worker(p)
        masked = await p.with_settings(CONSOLE_REDACT="true")
        call = calls[0]
        numbers = {digits(n) for c in calls for n in (c.from_, c.to)}
        try:
            async with console_page(masked, "/calls?minutes=600") as (page, url):
                listing = await page.content()
                assert mask_number("+" + digits(call.to if call.direction == "outbound" else call.from_)) in listing
                for path in ("/", "/calls?minutes=600", f"/calls/{call.call_id}", f"/calls/{call.call_id}/deliveries",
                             f"/search?q={digits(call.from_)[-7:]}"):
                    await page.goto(url + path)
                    html = await page.content()
                    assert not [n for n in numbers if n in html], path
                    if path.startswith("/search"):
                        assert call.call_id in html
        finally:
            await _cleanup(p)


async def test_an_erased_call_shows_as_erased() -> None:
    """After `forget --call`, the call's page says it was erased, and when; the other calls' pages do not."""
    async with pipeline(SandboxConfig(seed=33, transcript_share=0.0)) as p:
        calls, _ = await p.place_and_send(2)
        await _worker(p)
        status, out = await forget(p, "--call", calls[0].call_id)
        assert status == 0, out
        try:
            async with console_page(p, f"/calls/{calls[0].call_id}") as (page, url):
                assert "Erased" in (await page.text_content("#erased") or "")
                await page.goto(f"{url}/calls/{calls[1].call_id}")
                assert await page.query_selector("#erased") is None
        finally:
            await _cleanup(p)
