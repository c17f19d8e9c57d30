"""Each destination's successes and failures over time on the destinations page (issue #23), in Chromium.

The counts come from the real worker's tries (workers/deliver/attempts.py's series), drawn as SVG on the server.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.console import console_page, shot
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import routed

NAMES = ("events", "crm")


async def test_the_destinations_page_charts_each_destinations_tries_over_time(tmp_path: Path) -> None:
    """crm takes the first calls' events, then answers 503 (two tries each, then a dead letter): crm's chart counts
    exactly the tries it answered 2xx as delivered and those it answered 503 as failed, drawn as green and red
    bars; `events`' chart has only successes; the window is a form field, and a bad one is a form error."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver, crm="    retry: {schedule: [50ms]}\n") as p:
        await p.place_and_send(3)
        await p.run_worker()
        receiver.status = 503
        await p.place_and_send(2)
        await p.run_worker()
        ok, failed = len(receiver.received), len(receiver.requests) - len(receiver.received)
        assert ok and failed
        async with console_page(p, "/destinations", names=NAMES) as (page, url):
            crm = page.locator("svg#series-crm")
            assert (await crm.get_attribute("data-ok"), await crm.get_attribute("data-fail")) == (str(ok), str(failed))
            drawn = [int(str(await r.get_attribute("data-count"))) for r in await crm.locator("rect.fail").all()]
            assert sum(drawn) == failed
            events = page.locator("svg#series-events")
            assert await events.get_attribute("data-fail") == "0" and int(str(await events.get_attribute("data-ok")))
            await shot(page, "destinations-series")
            await page.fill("#window input[name=hours]", "1")
            await page.click("#window button")
            assert "hours=1" in page.url and await crm.get_attribute("data-fail") == str(failed)
            await page.goto(f"{url}/destinations?hours=a-day")
            assert "hours" in await page.inner_text("p.form-error")
            assert await crm.get_attribute("data-ok") == str(ok)
