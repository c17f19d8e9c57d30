"""The console's HTTP app: `create_app(settings, options)`, server-rendered pages behind a login.

    /login           the form (CONSOLE_TOKEN); also `Authorization: Basic` (any user, the token as password)
                     or `Bearer <token>` for scripts
    /                overview: calls per minute by outcome, latency, recovered calls, dead letters (SVG)
    /calls           the call index with filters (the account among them); /calls/{id} a call's timeline
                     (console/trace.py), its account named
    /calls/{id}/deliveries  each delivery attempt: HTTP status, response, payload scrubbed (console/attempts.py)
    /search          by call id, event id or phone number (console/search.py)
    every page       the banner: what is wrong now (console/banner.py); the lists and the overview reload
                     themselves every ConsoleOptions.refresh_seconds, until POST /refresh turns it off
    /destinations    each destination's health; pause, resume, replay since a time (console/destinations.py)
    /dead-letters    filters, replay one, replay or purge all matching after a count (console/letters.py)
Actions (every POST but login and logout) answer 403 unless CONSOLE_ALLOW_ACTIONS=1.

Every POST carries Litestar's CSRF token (CSRFConfig: cookie + hidden field). A login opens a session of its
own (console/session.py: a random id in Redis for 12 h, deleted at logout); its cookie (HttpOnly,
SameSite=Strict, Secure over https) holds only that id, never the token. A cookie that is no live session
gets the login page. Every failure is a page (console/errors.py): with Redis down, every page answers a 503
that says since when; a bad query parameter is an error beside the page's form. Pages show no secret: no
URLs of destinations, recording links without their query string.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from arq.connections import ArqRedis
from litestar import Litestar, Request, Response, get, post
from litestar.config.csrf import CSRFConfig
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from redis.exceptions import RedisError

from console import attempts, banner, charts, data, destinations, errors, letters, paging, search, session, trace
from console import privacy as console_privacy
from console.web import BANNER, REFRESH_COOKIE, Form, PageNumber, page
from console.web import ConsoleOptions as ConsoleOptions  # re-exported: console.asgi and the tests import it here
from contract import logs, redisurl
from contract.accounts import DEFAULT as DEFAULT_ACCOUNT
from contract.jobs import job_deserializer, job_serializer
from contract.record import without_query
from contract.settings import Settings

log = logs.get("console")

OPEN_PATHS = frozenset({"/login", "/healthz"})


class LoginForm(msgspec.Struct):
    token: str = ""


async def _gate(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Lets a script's token or a live session through; sends anything else to the login page."""
    options: ConsoleOptions = request.app.state.options
    if request.url.path in OPEN_PATHS or session.token_matches(request.headers.get("authorization", ""),
                                                               options.token):
        return None
    cookie = request.cookies.get(session.COOKIE, "")
    try:
        if cookie and await session.active(request.app.state.redis, _prefix(request), cookie):
            return None
    except RedisError as e:
        return errors.redis_down(request, "check your session", e)
    asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")  # back to the filtered view
    to_login: Response[Any] = Redirect(f"/login?next={quote(asked)}")
    if cookie:
        to_login.delete_cookie(session.COOKIE, path="/")
    return to_login


async def _before(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """The gate, then, for a page, the banner (console/banner.py), which every page shows."""
    if (answer := await _gate(request)) is not None or request.method != "GET" or request.url.path in OPEN_PATHS:
        return answer
    settings: Settings = request.app.state.settings
    options: ConsoleOptions = request.app.state.options
    known = destinations.configured(settings) or ()
    names = [d.name for d in known] or list(request.app.state.destination_names)
    request.state[BANNER] = await banner.read(request.app.state.redis, settings, known, names, options.thresholds)
    return None


class RefreshForm(msgspec.Struct):
    on: str = ""
    next: str = "/"


@post("/refresh", status_code=303)
async def refresh_switch(
    request: Request[Any, Any, Any], data: Annotated[RefreshForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    """Turns this browser's auto-refresh off or back on (a cookie), then back to the page it was on."""
    back = data.next if data.next.startswith("/") and not data.next.startswith("//") else "/"
    response: Response[Any] = Redirect(back)
    if data.on == "1":
        response.delete_cookie(REFRESH_COOKIE, path="/")
    else:
        response.set_cookie(REFRESH_COOKIE, "off", max_age=365 * 86400, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
    return response


def _prefix(request: Request[Any, Any, Any]) -> str:
    settings: Settings = request.app.state.settings
    return settings.key_prefix


@get("/healthz", include_in_schema=False, opt={"no_redis": True})
async def healthz() -> str:
    return "ok"


@get("/login", opt={"no_redis": True})
async def login_form(request: Request[Any, Any, Any], next: FromQuery[str] = "/",
                     failed: FromQuery[bool] = False) -> Template:
    return page("login.html", request, next=next if next.startswith("/") else "/", failed=failed)


@post("/login", status_code=303)
async def login(
    request: Request[Any, Any, Any], data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    next: FromQuery[str] = "/",
) -> Response[Any]:
    options: ConsoleOptions = request.app.state.options
    if not hmac.compare_digest(data.token.encode(), options.token.encode()):
        log.warning("console.login_refused", client=request.client.host if request.client else None)
        return Redirect("/login?failed=true")
    redis = request.app.state.redis
    try:
        await session.end(redis, _prefix(request), request.cookies.get(session.COOKIE, ""))  # one per browser
        session_id = await session.start(redis, _prefix(request), options.session_seconds)
    except RedisError as e:
        return errors.redis_down(request, "log you in", e)
    response: Response[Any] = Redirect(next if next.startswith("/") and not next.startswith("//") else "/")
    response.set_cookie(session.COOKIE, session_id, max_age=options.session_seconds, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@post("/logout", status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """Ends the session in Redis, so a copy of the cookie stops working too, then drops the browser's cookie."""
    try:
        await session.end(request.app.state.redis, _prefix(request), request.cookies.get(session.COOKIE, ""))
    except RedisError as e:
        return errors.redis_down(request, "end your session (it stays valid until it expires)", e)
    response: Response[Any] = Redirect("/login")
    response.delete_cookie(session.COOKIE, path="/")
    return response


@get("/")
async def overview_page(request: Request[Any, Any, Any], minutes: FromQuery[str] = "60",
                        account: FromQuery[str] = "") -> Template:
    settings: Settings = request.app.state.settings
    form = Form()
    minutes_ = form.whole("minutes", minutes, 60, 5, 24 * 60)
    accounts = data.accounts(request.app.state.account_names, ())
    view = await data.overview(request.app.state.redis, settings.key_prefix, settings.dead_letter_stream, minutes_,
                               account=form.choice("account", account.strip(), accounts))
    health = await destinations.rows(request.app.state.redis, settings, request.app.state.destination_names)
    return page("overview.html", request, form, view=view, p50=view.percentile(0.5), p95=view.percentile(0.95),
                health=health, when=destinations.when, accounts=accounts,
                calls_chart=charts.per_minute_bars(view.per_minute, minutes_, data.now_ms()),
                latency_chart=charts.latency_bars(view.latencies_ms), colours=charts.COLOURS)


@get("/calls")
async def calls_page(
    request: Request[Any, Any, Any], minutes: FromQuery[str] = "60", outcome: FromQuery[str] = "",
    direction: FromQuery[str] = "", alerted: FromQuery[str] = "", account: FromQuery[str] = "",
    number: PageNumber = "1",
) -> Template:
    settings: Settings = request.app.state.settings
    form = Form()
    chosen = data.CallFilter(minutes=form.whole("minutes", minutes, 60, 1, 7 * 24 * 60),
                             outcome=form.choice("outcome", outcome, list(charts.COLOURS)),
                             direction=form.choice("direction", direction, ("inbound", "outbound", "unknown")),
                             alerted=form.choice("alerted", alerted, ("yes", "no")))
    listed = await data.calls(request.app.state.redis, settings.key_prefix, data.now_ms() - chosen.minutes * 60_000)
    accounts = data.accounts(request.app.state.account_names, (s.account for s in listed))
    chosen = replace(chosen, account=form.choice("account", account, accounts))  # unknown: said, then any
    found = [s for s in listed if chosen.keeps(s)]
    shown = paging.paged(found, form.whole("page", number, 1, 1, 10**6))
    return page("calls.html", request, form, calls=shown, link=paging.links(request),
                capped=len(listed) >= data.MAX_CALLS, filter=chosen, clock=trace.clock, colours=charts.COLOURS,
                outcomes=list(charts.COLOURS), accounts=accounts)


@get("/calls/{call_id:str}")
async def call_page(request: Request[Any, Any, Any], call_id: FromPath[str]) -> Template:
    settings: Settings = request.app.state.settings
    timeline = await trace.read(request.app.state.redis, settings.key_prefix, call_id, request.app.state.account_names)
    events = [s for s in timeline.steps if s.step == "event"]
    recording = without_query(timeline.summary.recording_url) if timeline.summary else ""
    erased = await console_privacy.erased_at(request.app.state.redis, settings.key_prefix, call_id)  # issue #25
    return page("call.html", request, timeline=timeline, events=events, recording=recording, clock=trace.clock,
                erased=erased)


def create_app(settings: Settings, options: ConsoleOptions, destination_names: tuple[str, ...] = (),
               account_names: tuple[str, ...] = ()) -> Litestar:
    """`account_names`: ACCOUNTS_FILE's (console/asgi.py), offered by the account filters; each account's webhook
    lists of a call are read for its page. Empty: the `default` account alone."""
    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        redis = redisurl.client(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=5.0)
        app.state.redis = redis
        app.state.arq = ArqRedis(connection_pool=redis.connection_pool, job_serializer=job_serializer,
                                 job_deserializer=job_deserializer)
        try:
            yield
        finally:
            await redisurl.close(redis)

    app = Litestar(
        route_handlers=[healthz, login_form, login, logout, overview_page, calls_page, call_page,
                        destinations.destinations_page, destinations.destination_action,
                        letters.dead_letters_page, letters.confirm_page, letters.matching_action, letters.replay_one,
                        search.search_page, refresh_switch, attempts.deliveries_page],
        lifespan=[resources],
        before_request=_before,
        after_response=errors.after,
        exception_handlers=errors.handlers,
        csrf_config=CSRFConfig(secret=session.csrf_secret(options.token), cookie_name="wavix_console_csrf",
                               cookie_samesite="strict", cookie_httponly=True),
        template_config=TemplateConfig(directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine,
                                       engine_callback=console_privacy.templates(settings)),  # CONSOLE_REDACT
        openapi_config=None,
        logging_config=None,
    )
    app.state.settings = settings
    app.state.options = options
    app.state.outage = errors.Outage()
    app.state.destination_names = destination_names
    app.state.account_names = account_names or (DEFAULT_ACCOUNT,)
    return app
