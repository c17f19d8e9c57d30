"""The console's login sessions (issue #22) against the real app and the real Redis, through Litestar's test client.

A login gets a session id of its own, kept in Redis under the console's key prefix for a bounded life and
deleted on logout, so a copied cookie stops opening pages when its session ends. A cookie that is not one of
ours (a non-ASCII byte, say) gets the login page, never a 500; with Redis down, the answer is a clear 503.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from console.app import ConsoleOptions, create_app
from contract.settings import Settings
from tests.conftest import REDIS_URL, forget
from tests.helpers.servers import free_port

TOKEN = "console-token-" + "s" * 20
COOKIE = "wavix_console"
Client = AsyncTestClient[Litestar]


@asynccontextmanager
async def console(
    redis_url: str = REDIS_URL, session_seconds: int = 12 * 3600
) -> AsyncIterator[tuple[Client, Settings]]:
    """The console on its own key prefix (deleted afterwards), no destinations configured."""
    run = uuid.uuid4().hex
    settings = Settings.from_env({"REDIS_URL": redis_url, "KEY_PREFIX": f"test:console-session:{run}:",
                                  "DEAD_LETTER_STREAM": f"test:console-session-dead:{run}"})
    app = create_app(settings, ConsoleOptions(token=TOKEN, session_seconds=session_seconds))
    try:
        async with AsyncTestClient(app=app) as client:
            yield client, settings
    finally:
        forget([settings.key_prefix], [settings.dead_letter_stream])


def csrf_field(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the login page and every page's logout form carry the CSRF field"
    return found.group(1)


async def try_log_in(client: Client) -> httpx.Response:
    """The login form POSTed with the right token, whatever the answer (a 503 while Redis is away)."""
    form = await client.get("/login")
    return await client.post("/login", data={"token": TOKEN, "_csrf_token": csrf_field(form.text)},
                             follow_redirects=False)


async def log_in(client: Client) -> httpx.Response:
    """The login form POSTed with the right token; the answer is the redirect that sets the session cookie."""
    answer = await try_log_in(client)
    assert answer.status_code in (302, 303) and COOKIE in answer.cookies, answer.headers
    return answer


async def with_cookie(client: Client, path: str, cookie: bytes) -> httpx.Response:
    """GET `path` carrying exactly this raw Cookie header and nothing from the client's jar."""
    client.cookies.clear()
    return await client.get(path, headers=[(b"cookie", cookie)], follow_redirects=False)


def sent_to_login(answer: httpx.Response) -> bool:
    """A redirect to the login page, or the login page itself."""
    if answer.status_code in (302, 303, 307):
        return answer.headers["location"].startswith("/login")
    return answer.status_code == 200 and 'id="token"' in answer.text and 'action="/logout"' not in answer.text


async def session_keys(settings: Settings) -> dict[bytes, int]:
    """Every key under the console's prefix with its remaining life in ms."""
    redis = Redis.from_url(REDIS_URL)
    try:
        return {k: await redis.pttl(k) async for k in redis.scan_iter(match=f"{settings.key_prefix}*")}
    finally:
        await redis.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> bool:
    """True as soon as `check()` is; False if it is still not after `within_s` (Redis's own clock decides)."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_copied_cookie_stops_working_at_logout() -> None:
    """Log in, copy the session cookie, log out: the copy no longer opens a page (it is sent to the login
    page), because logout deletes the session in Redis, not only the browser's cookie."""
    async with console() as (client, settings):
        copied = (await log_in(client)).cookies[COOKIE]
        page = await client.get("/calls")
        assert page.status_code == 200 and 'action="/logout"' in page.text
        out = await client.post("/logout", data={"_csrf_token": csrf_field(page.text)}, follow_redirects=False)
        assert out.status_code in (302, 303) and out.headers["location"] == "/login"
        assert await session_keys(settings) == {}, "logout leaves no session behind in Redis"
        for path in ("/", "/calls", "/dead-letters", "/destinations"):
            assert sent_to_login(await with_cookie(client, path, f"{COOKIE}={copied}".encode())), path


async def test_each_login_gets_its_own_session() -> None:
    """Two logins with the same token get different session cookies, both working, HttpOnly, SameSite=Strict
    and bounded to 12 hours; Redis keeps each under the console's prefix with at most that life, and never
    the cookie itself (only a hash of it)."""
    async with console() as (client, settings):
        first, second = await log_in(client), await log_in(client)
        ids = {first.cookies[COOKIE], second.cookies[COOKIE]}
        assert len(ids) == 2 and TOKEN not in "".join(ids)
        header = second.headers["set-cookie"].lower()
        assert "httponly" in header and "samesite=strict" in header and "max-age=43200" in header
        assert sent_to_login(await with_cookie(client, "/", f"{COOKIE}={first.cookies[COOKIE]}".encode())), \
            "a second login in the same browser ends the first session"
        assert (await with_cookie(client, "/", f"{COOKIE}={second.cookies[COOKIE]}".encode())).status_code == 200
        kept = await session_keys(settings)
        assert len(kept) == 1 and all(0 < ttl <= 12 * 3600 * 1000 for ttl in kept.values()), kept
        assert not any(i.encode() in k for i in ids for k in kept), "Redis holds no usable cookie"


async def test_a_session_past_its_life_is_refused() -> None:
    """A session opened with a 60 s life is kept in Redis with that life and opens pages; once Redis has
    expired it (its last millisecond set with PEXPIRE: the test does not wait a minute, nor time anything a
    loaded machine could stretch), its cookie is sent to the login page like any unknown one."""
    async with console(session_seconds=60) as (client, settings):
        cookie = f"{COOKIE}={(await log_in(client)).cookies[COOKIE]}".encode()
        lives = await session_keys(settings)
        assert lives and all(0 < ttl <= 60_000 for ttl in lives.values()), lives
        assert (await with_cookie(client, "/", cookie)).status_code == 200
        redis = Redis.from_url(REDIS_URL)
        try:
            for key in lives:
                await redis.pexpire(key, 1)
        finally:
            await redis.aclose()

        async def expired() -> bool:
            return await session_keys(settings) == {}

        assert await eventually(expired)
        assert sent_to_login(await with_cookie(client, "/", cookie))


def page_paths(client: Client) -> list[str]:
    """Every GET route of the app, path parameters filled in."""
    paths = []
    for route in client.app.routes:
        if isinstance(route, HTTPRoute) and any("GET" in (h.http_methods or ()) for h in route.route_handlers
                                                 if isinstance(h, HTTPRouteHandler)):
            paths.append(re.sub(r"\{[^}]+\}", "CA-0000", route.path))
    return paths


async def test_a_malformed_cookie_gets_the_login_page_on_every_page() -> None:
    """A session cookie holding a non-ASCII byte, an empty one, or junk in the CSRF cookie too, gets the login
    page (or a redirect to it) on every GET route, never a 500."""
    async with console() as (client, _):
        paths = page_paths(client)
        assert {"/", "/calls", "/calls/CA-0000", "/destinations", "/dead-letters", "/login"} <= set(paths)
        for cookie in (f"{COOKIE}=\xff".encode("latin-1"), f"{COOKIE}=ok\xff\xfe".encode("latin-1"),
                       f"{COOKIE}=; wavix_console_csrf=\xff".encode("latin-1"), b"\xff\xfe=\xff",
                       f"{COOKIE}={'a' * 43}".encode()):
            for path in paths:
                if path == "/healthz":
                    continue
                answer = await with_cookie(client, path, cookie)
                assert answer.status_code != 500 and sent_to_login(answer), (path, cookie, answer.status_code)


async def test_with_redis_down_the_session_check_answers_503() -> None:
    """With Redis unreachable, a page asked with a session cookie and a login with the right token are answered
    503 with a page that says Redis is unavailable, not a 500; the login form itself still opens."""
    async with console(redis_url=f"redis://127.0.0.1:{free_port()}/0") as (client, _):
        form = await client.get("/login")
        assert form.status_code == 200
        login = await client.post("/login", data={"token": TOKEN, "_csrf_token": csrf_field(form.text)},
                                  follow_redirects=False)
        assert login.status_code == 503 and "Redis" in login.text, (login.status_code, login.text[:300])
        page = await with_cookie(client, "/calls", f"{COOKIE}={'a' * 43}".encode())
        assert page.status_code == 503 and "Redis" in page.text, (page.status_code, page.text[:300])
