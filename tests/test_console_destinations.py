"""The destinations page in a real browser: pause, resume and replay-since from the page, seen in Redis and
delivered by the real worker to a signed webhook (tests/helpers/sinks.py's receiver).

Debian's headless Chromium through Playwright against the served console (tests/test_console_browser.py's
`served`), on a pipeline whose routing file has a Redis Stream destination `events` and a webhook `crm`
(tests/test_deliveries_control.py's `routed`). Screenshots land in tests/artifacts/console/.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Page

from contract.events import COMPLETED, decode_event
from tests.helpers.sinks import SECRET, WebhookReceiver
from tests.pipeline import Pipeline, routed
from tests.test_console_browser import ARTIFACTS, CONSOLE_TOKEN, chromium, served
from tests.test_deliveries_control import webhook_ids
from workers.deliver import health


async def _login(page: Page, url: str) -> None:
    await page.goto(f"{url}/destinations")
    await page.fill("#token", CONSOLE_TOKEN)
    await page.click("#login")
    assert page.url.endswith("/destinations")


async def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def _crm(p: Pipeline) -> health.Health:
    (row,) = await health.read(p.redis, p.settings.key_prefix, ["crm"])
    return row


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _pause_then_resume(p: Pipeline, page: Page, receiver: WebhookReceiver) -> None:
    """Pause from the page parks crm's deliveries; Resume sends them."""
    crm = page.locator("#destination-crm")
    await crm.locator("button.pause").click()
    assert "crm: paused" in await page.inner_text("#done")
    assert await page.locator("#destination-crm").get_attribute("data-state") == "paused"
    assert (await _crm(p)).paused, "the page's Pause must pause crm in Redis"
    before = len(receiver.received)
    await p.place_and_send(2)
    await p.run_worker()
    assert len(receiver.received) == before, "a paused destination receives nothing"
    await page.reload()
    parked = (await _crm(p)).parked
    assert parked >= 2 and await page.inner_text("#destination-crm td.parked") == str(parked)
    await _shot(page, "destinations-paused")

    await page.locator("#destination-crm button.resume").click()
    assert f"{parked} parked deliveries queued" in await page.inner_text("#done")
    assert await page.locator("#destination-crm").get_attribute("data-state") == "ok"
    assert not (await _crm(p)).paused
    await p.run_worker()
    assert len(receiver.received) == before + parked and (await _crm(p)).parked == 0


async def test_operator_pauses_resumes_and_replays_a_destination_from_the_page(tmp_path: Path) -> None:
    """The destinations page shows crm's health (delivered, ok) and no URL or secret; Pause marks it paused in
    Redis and on the page and its new events park; Resume sends them; Replay since a time, until a later one,
    for one event type, queues exactly crm's logged events of that type, which the worker sends again with the
    same ids while `events` gets nothing more; the overview lists both destinations' state."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver) as p:
        since = time.time() - 2
        await p.place_and_send(3)
        await p.run_worker()
        first = webhook_ids(receiver)
        assert first
        async with served(p) as url, chromium() as browser:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await _login(page, url)
            assert await page.locator("tr.destination").count() == 2
            assert await page.locator("#destination-crm").get_attribute("data-state") == "ok"
            assert "ago" in await page.inner_text("#destination-crm td.mono >> nth=1"), "crm had a success"
            await _shot(page, "destinations")
            content = await page.content()
            assert SECRET not in content and f":{receiver.port}" not in content and p.settings.redis_url not in content

            await _pause_then_resume(p, page, receiver)

            events_before, sent_before = len(await p.events()), len(receiver.received)
            completed = [i for i, e in ((r, decode_event(r.body)) for r in receiver.received) if e.type == COMPLETED]
            form = page.locator("#destination-crm form.replay")
            await form.locator("input.since").fill(_iso(since))
            await form.locator("input.until").fill(_iso(time.time() + 60))
            await form.locator("input.type").fill(COMPLETED)
            await form.locator("button.replay").click()
            assert f"crm: {len(completed)} events queued for replay" in await page.inner_text("#done")
            await p.run_worker()
            again = [decode_event(r.body) for r in receiver.received[sent_before:]]
            assert sorted(e.id for e in again) == sorted(decode_event(r.body).id for r in completed)
            assert {e.type for e in again} == {COMPLETED}
            assert len(await p.events()) == events_before, "only crm is replayed to"
            await _shot(page, "destinations-replayed")

            await page.goto(url + "/")
            states = page.locator("#destination-health tr[data-name]")
            assert [await states.nth(i).get_attribute("data-name") for i in range(2)] == ["events", "crm"]
            assert await page.locator("#destination-health tr[data-name=crm]").get_attribute("data-state") == "ok"
            await _shot(page, "overview-destinations")


async def test_without_actions_the_page_has_no_forms_and_a_post_is_refused(tmp_path: Path) -> None:
    """With CONSOLE_ALLOW_ACTIONS off the browser sees crm's health but no Pause, Resume or Replay form, and a
    pause POSTed from the page's own origin with its CSRF token is answered 403 and pauses nothing."""
    async with routed(tmp_path, WebhookReceiver()) as p, served(p, allow_actions=False) as url, chromium() as browser:
        page = await browser.new_page()
        await _login(page, url)
        assert await page.locator("#destination-crm").count() == 1
        assert await page.locator("form.replay, button.pause, button.resume").count() == 0
        assert await page.locator("#actions-off").count() == 1
        token = await page.locator("input[name=_csrf_token]").first.get_attribute("value")
        answer = await page.request.post(f"{url}/destinations/crm/pause", form={"_csrf_token": token or ""})
        assert answer.status == 403 and "CONSOLE_ALLOW_ACTIONS" in await answer.text()
        assert not (await _crm(p)).paused
