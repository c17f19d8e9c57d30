"""The console's destination actions without a browser: Litestar's test client against the real app and Redis.

Actions are refused (403) while CONSOLE_ALLOW_ACTIONS is off, and any POST without the CSRF token is refused
even when they are on; the page never shows a destination's URL or secret, nor a URL in its last error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from console.app import ConsoleOptions, create_app
from console.destinations import masked
from contract.settings import Settings
from tests.conftest import REDIS_URL, forget
from workers.deliver import health

TOKEN = "console-token-" + "a" * 20
SECRET = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1zaG93"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def console(tmp_path: Path, allow_actions: bool) -> AsyncIterator[tuple[AsyncTestClient, Settings]]:  # type: ignore[type-arg]
    """The console on its own key prefix, with a routing file holding one signed webhook `crm` (with a password)."""
    run = uuid.uuid4().hex
    routing = tmp_path / "sinks.yaml"
    routing.write_text("destinations:\n"
                       f"  - name: crm\n    url: http://user:hunter2@127.0.0.1:9/hooks?key=k-{run}\n"
                       f"    secret: {SECRET}\n    retry: {{schedule: [1m, 1h]}}\n")
    settings = Settings.from_env({"REDIS_URL": REDIS_URL, "KEY_PREFIX": f"test:console:{run}:",
                                  "QUEUE_NAME": f"test:console-queue:{run}", "DEAD_LETTER_STREAM": f"test:dead:{run}",
                                  "SINKS_CONFIG": str(routing)})
    app = create_app(settings, ConsoleOptions(token=TOKEN, allow_actions=allow_actions), ("crm",))
    try:
        async with AsyncTestClient(app=app) as client:
            yield client, settings
    finally:
        forget([settings.key_prefix], [settings.queue_name, settings.dead_letter_stream])


def csrf_field(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "every page carries the CSRF field (the logout form at least)"
    return found.group(1)


async def test_actions_are_refused_and_absent_while_actions_are_off(tmp_path: Path) -> None:
    """Without CONSOLE_ALLOW_ACTIONS the destinations page has no pause or replay form, and a POST carrying a
    valid CSRF token is answered 403 by the app itself: the destination stays unpaused in Redis."""
    async with console(tmp_path, allow_actions=False) as (client, settings):
        page = await client.get("/destinations", headers=AUTH)
        assert page.status_code == 200 and 'data-name="crm"' in page.text
        assert "/destinations/crm/pause" not in page.text and "/replay" not in page.text
        token = csrf_field(page.text)
        for action in ("pause", "replay"):
            answer = await client.post(f"/destinations/crm/{action}", headers=AUTH,
                                       data={"_csrf_token": token, "since": "1h"})
            assert answer.status_code == 403 and "CONSOLE_ALLOW_ACTIONS" in answer.text
        redis = Redis.from_url(REDIS_URL)
        try:
            (row,) = await health.read(redis, settings.key_prefix, ["crm"])
        finally:
            await redis.aclose()
        assert not row.paused


async def test_a_post_without_the_csrf_token_is_refused(tmp_path: Path) -> None:
    """With actions on, a pause POSTed without the CSRF token (a forged cross-site form) is refused with 403
    before it reaches the handler, and the destination is not paused; with the token, the same POST pauses it."""
    async with console(tmp_path, allow_actions=True) as (client, settings):
        redis = Redis.from_url(REDIS_URL)
        try:
            page = await client.get("/destinations", headers=AUTH)
            forged = await client.post("/destinations/crm/pause", headers=AUTH, data={})
            assert forged.status_code == 403 and "CONSOLE_ALLOW_ACTIONS" not in forged.text
            (row,) = await health.read(redis, settings.key_prefix, ["crm"])
            assert not row.paused
            done = await client.post("/destinations/crm/pause", headers=AUTH,
                                     data={"_csrf_token": csrf_field(page.text)}, follow_redirects=False)
            assert done.status_code == 303 and "crm%3A%20paused" in done.headers["location"]
            (row,) = await health.read(redis, settings.key_prefix, ["crm"])
            assert row.paused
        finally:
            await redis.aclose()


async def test_the_page_shows_health_but_no_url_or_secret(tmp_path: Path) -> None:
    """A failing destination shows its streak, state, schedule and last error, with the URL in that error
    masked; neither its URL, its password nor its signing secret appears on the destinations or overview page."""
    async with console(tmp_path, allow_actions=True) as (client, settings):
        redis = Redis.from_url(REDIS_URL)
        url = f"http://user:hunter2@127.0.0.1:9/hooks?key=k-{settings.key_prefix.split(':')[2]}"
        try:
            await redis.hset(health.keys(settings.key_prefix, "crm").health,
                             mapping={"streak": 3, "since_ms": 1, "error": f"crm: connect to {url} refused"})
            for path in ("/destinations", "/"):
                page = await client.get(path, headers=AUTH)
                assert 'data-state="failing"' in page.text, path
                assert "hunter2" not in page.text and "127.0.0.1:9" not in page.text and SECRET not in page.text
            page = await client.get("/destinations", headers=AUTH)
            assert "crm: connect to … refused" in page.text and "1m, 1h" in page.text
        finally:
            await redis.aclose()
    assert masked("x http://a:b@h/p y", ()) == "x [url] y"


async def test_an_impossible_action_is_reported_not_done(tmp_path: Path) -> None:
    """A replay without a since time, with a time that is not one, or for a name not in the routing file is
    answered with the CLI's own refusal on the page (nothing queued), and an unknown action is 404."""
    async with console(tmp_path, allow_actions=True) as (client, settings):
        token = csrf_field((await client.get("/destinations", headers=AUTH)).text)
        for name, since, said in (("crm", "", "replay needs a since time"), ("crm", "yesterday", "not a time"),
                                  ("crn", "1h", "no destination &#39;crn&#39; in the routing file; known: crm")):
            page = await client.post(f"/destinations/{name}/replay", headers=AUTH,
                                     data={"_csrf_token": token, "since": since})
            assert page.status_code == 200 and "not done: " in page.text and said in page.text, said
        unknown = await client.post("/destinations/crm/explode", headers=AUTH, data={"_csrf_token": token})
        assert unknown.status_code == 404
        redis = Redis.from_url(REDIS_URL)
        try:
            assert await redis.zcard(settings.queue_name) == 0
        finally:
            await redis.aclose()
