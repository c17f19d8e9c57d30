"""The console degrades, never breaks (issue #23): the real app through Litestar's test client.

With Redis unreachable every page answers a readable 503 that says what is wrong and since when, and the
console logs it; once Redis answers again the pages come back. A query parameter that is not what its form
field expects is shown as an error beside that form, never as raw JSON.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from console.app import ConsoleOptions, create_app
from contract.settings import Settings
from tests.conftest import REDIS_URL, forget
from tests.helpers.servers import free_port
from tests.test_console_session import page_paths

TOKEN = "console-token-" + "d" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = AsyncTestClient[Litestar]


@asynccontextmanager
async def console(redis_url: str = REDIS_URL) -> AsyncIterator[tuple[Client, Settings]]:
    run = uuid.uuid4().hex
    settings = Settings.from_env({"REDIS_URL": redis_url, "KEY_PREFIX": f"test:console-degrades:{run}:",
                                  "QUEUE_NAME": f"test:console-degrades-queue:{run}",
                                  "DEAD_LETTER_STREAM": f"test:console-degrades-dead:{run}"})
    app = create_app(settings, ConsoleOptions(token=TOKEN, allow_actions=True))
    try:
        async with AsyncTestClient(app=app) as client:
            yield client, settings
    finally:
        forget([settings.key_prefix], [settings.queue_name, settings.dead_letter_stream])


async def test_with_redis_down_every_page_says_so_and_since_when(caplog: pytest.LogCaptureFixture) -> None:
    """With Redis unreachable, every page (a script's Bearer token skips the session check) answers 503 with an
    HTML page naming Redis and the time it first failed, the same time on every later page; and each failure
    is a warning in the console's log, with the page and the error."""
    caplog.set_level(logging.WARNING, logger="console")
    async with console(redis_url=f"redis://127.0.0.1:{free_port()}/0") as (client, _):
        paths = [p for p in page_paths(client) if p not in ("/login", "/healthz")]
        assert {"/", "/calls", "/calls/CA-0000", "/destinations", "/dead-letters"} <= set(paths)
        since = set()
        for path in paths:
            answer = await client.get(f"{path}?q=CA-0000", headers=AUTH)  # the search page reads only with a query
            assert answer.status_code == 503, (path, answer.status_code, answer.text[:200])
            assert answer.headers["content-type"].startswith("text/html"), path
            assert "Redis" in answer.text and answer.headers["retry-after"], path
            found = re.search(r'id="down-since">([^<]+)<', answer.text)
            assert found, (path, answer.text[:500])
            since.add(found.group(1))
        assert len(since) == 1, f"one outage, one first-failure time: {since}"
    logged = [r for r in caplog.records if r.getMessage() == "console.redis_unavailable"]
    assert {r.fields["page"] for r in logged} >= set(paths)  # type: ignore[attr-defined]


async def test_a_page_comes_back_when_redis_does() -> None:
    """The outage's start is forgotten once Redis answers a page again: that page is a 200."""
    async with console() as (client, _):
        outage = client.app.state.outage
        outage.failed()
        assert outage.since_ms
        assert (await client.get("/calls", headers=AUTH)).status_code == 200
        assert not outage.since_ms


@pytest.mark.parametrize(("path", "field"), [("/?minutes=lots", "minutes"), ("/calls?minutes=1h", "minutes"),
                                             ("/calls?minutes=", "minutes")])
async def test_a_bad_query_parameter_is_a_form_error(path: str, field: str) -> None:
    """A query parameter that is not a whole number (`minutes=lots`) gives the page itself, with its form and an
    error naming the field beside it, not Litestar's JSON 400; the page uses the default meanwhile."""
    async with console() as (client, _):
        answer = await client.get(path, headers=AUTH)
        assert answer.status_code == 400, (answer.status_code, answer.text[:200])
        assert answer.headers["content-type"].startswith("text/html")
        error = re.search(r'<p class="form-error"[^>]*>([^<]+)<', answer.text)
        assert error and field in error.group(1), answer.text[:800]
        assert "<form" in answer.text and '"status_code"' not in answer.text
