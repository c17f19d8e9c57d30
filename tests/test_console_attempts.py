"""Each delivery attempt's HTTP status, response and payload in the console (issue #23), in Chromium.

The real worker delivers to a Redis stream (`events`) and to a verifying webhook receiver (`crm`, answering
with a body that holds a URL with credentials and a token, and a signing secret); the page shows what each try
heard with those secrets scrubbed, and the event's payload, from a failed try's copy or from the event log.
"""

from __future__ import annotations

from pathlib import Path

from contract.events import COMPLETED
from tests.helpers.console import console_page, shot
from tests.helpers.sinks import SECRET, WebhookReceiver
from tests.pipeline import by_type, routed

NAMES = ("events", "crm")
ANSWER = b'{"error": "maintenance", "docs": "https://ops:hunter2@crm.example/help?token=tok-abc123", ' \
         b'"echo": "whsec_c2VjcmV0LWVjaG8="}'


async def test_each_attempt_shows_status_response_and_payload_with_secrets_scrubbed(tmp_path: Path) -> None:
    """A call delivered everywhere shows one delivered try per destination and its payload (from the event log).
    A call crm refuses with 503 shows crm's two tries with status 503, the response's text with the URL's
    password and query and the echoed secret masked, the headers sent with the signature masked, and the event's
    payload; `events`' try shows delivered with no status. No secret of crm reaches the page."""
    receiver = WebhookReceiver(answer_body=ANSWER)
    async with routed(tmp_path, receiver, crm="    retry: {schedule: [50ms]}\n") as p:
        await p.place_and_send(1)
        await p.run_worker()
        (healthy,) = by_type(await p.events(), COMPLETED)
        receiver.status = 503
        await p.place_and_send(1)
        await p.run_worker()
        (failing,) = set(by_type(await p.events(), COMPLETED)) - {healthy}
        async with console_page(p, f"/calls/{healthy}", names=NAMES) as (page, url):
            await page.click("#deliveries-link")
            tries = page.locator("section.event tr.try")
            assert {await tries.nth(i).get_attribute("data-destination") for i in range(await tries.count())} == \
                set(NAMES)
            assert {await tries.nth(i).get_attribute("data-outcome") for i in range(await tries.count())} == \
                {"delivered"}
            await page.click("section.event details.payload summary")
            assert healthy in await page.inner_text("section.event details.payload pre")

            await page.goto(f"{url}/calls/{failing}/deliveries")
            crm = page.locator("section.event tr.try[data-destination=crm]")
            assert await crm.count() == 2
            assert [await crm.nth(i).get_attribute("data-status") for i in range(2)] == ["503", "503"]
            response = await crm.first.locator("pre.response").inner_text()
            assert "maintenance" in response and "https://crm.example/help?[scrubbed]" in response
            assert "[scrubbed]" in response.split("echo")[1]
            assert "webhook-signature: v1,[scrubbed]" in await crm.first.locator(".request").inner_text()
            events = page.locator("section.event tr.try[data-destination=events]")
            assert await events.get_attribute("data-outcome") == "delivered"
            assert await events.locator("td.status").inner_text() == "\u2013"  # an en dash: no status
            await page.click("section.event details.payload summary")
            payload = await page.inner_text("section.event details.payload pre")
            assert failing in payload and COMPLETED in payload
            await shot(page, "delivery-attempts")
            content = await page.content()
            sent = receiver.requests[-1].headers["webhook-signature"].split(",", 1)[1]
            for secret in ("hunter2", "tok-abc123", "c2VjcmV0LWVjaG8", SECRET, sent, f":{receiver.port}"):
                assert secret not in content, secret
