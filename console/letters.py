"""The dead-letters page: filters, one letter's replay, and "replay / purge all matching (N)" behind a count.

    GET  /dead-letters                 the letters the filters keep (destination, account, reason, type, since,
                                       until), newest first, 50 a page, with "Replay all matching (N)" and "Purge all
                                       matching (N)" (links to the confirmation, never an action)
    GET  /dead-letters/confirm         what an action would touch: "Replay N dead letters matching ...?"
    POST /dead-letters/matching/{action}   replay or purge what the confirmation counted, and nothing newer
    POST /dead-letters/{id}/replay     one letter (a row's Purge goes through the confirmation, id=...)

The decisions are workers/operate/dlq.py's, the CLI's own: `Filters` and `select` choose, `replay` replays one letter
(only where its event did not arrive: the ledger), `delete` purges. The confirmation carries the filters and the
newest letter it counted (`upto`), so a letter that fails after the operator read the count is not touched by
the click; the page after says how many were done of how many counted. Actions answer 403 unless
CONSOLE_ALLOW_ACTIONS=1 and, like every POST, need the CSRF token. The account (issue #26) is read from each
letter's payload (workers/operate/dlq.py `account_of`) and is one of dlq's filters, so the selection's
cap counts only that account's letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template
from redis.exceptions import ResponseError

from console import data, paging, trace
from console.web import Form, PageNumber, page, refused
from contract import logs
from contract.jobs import JOB_FUNCTIONS
from contract.settings import Settings
from workers.deadletter import DeadLetter, entry
from workers.operate import dlq

log = logs.get("console.letters")

MAX_MATCH = 10_000  # letters a page or an action reads: a bulk action past it is done in several clicks
KINDS = (*JOB_FUNCTIONS, "slack_alert", "slack_note")
ACTIONS = ("replay", "purge")


class Chosen(msgspec.Struct, kw_only=True):
    """The filters as typed (query string or the confirmation's form); `id` one letter; `upto`/`count` the
    confirmation's bound and the count it showed."""

    destination: str = ""
    account: str = ""
    reason: str = ""
    type: str = ""
    since: str = ""
    until: str = ""
    id: str = ""
    upto: str = ""
    count: str = ""

    def query(self, **extra: str) -> str:
        """The filters (and `extra`) as a query string, empty fields left out."""
        fields = {k: getattr(self, k) for k in ("destination", "account", "reason", "type", "since", "until", "id")}
        return urlencode({k: v for k, v in {**fields, **extra}.items() if v})

    def described(self) -> str:
        said = [f"{k} {getattr(self, k)!r}" for k in ("id", "destination", "account", "type", "reason", "since",
                                                          "until") if getattr(self, k)]
        return ", ".join(said) or "no filter: every dead letter"


def filters(chosen: Chosen, form: Form, accounts: Sequence[str]) -> dlq.Filters:
    return dlq.Filters(destination=chosen.destination.strip() or None, reason=chosen.reason.strip() or None,
                       kind=form.choice("type", chosen.type, KINDS) or None,
                       account=form.choice("account", chosen.account.strip(), accounts) or None,
                       since_ms=form.time("since", chosen.since), until_ms=form.time("until", chosen.until))


def filterable(request: Request[Any, Any, Any]) -> list[str]:
    """The accounts the letters can be filtered by, as the menu offers them: the configured ones (the filter
    runs inside workers/operate/dlq.py's selection, before any letter is read)."""
    return data.accounts(request.app.state.account_names, ())


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def matching(request: Request[Any, Any, Any], chosen: Chosen, form: Form) -> list[DeadLetter]:
    """The letters `chosen` selects, oldest first (at most MAX_MATCH), none newer than its `upto`."""
    settings: Settings = request.app.state.settings
    if chosen.id:
        try:
            found = await request.app.state.redis.xrange(settings.dead_letter_stream, min=chosen.id, max=chosen.id)
        except ResponseError:
            found = []
        return [entry(i, f) for i, f in found]
    chosen_filters = filters(chosen, form, filterable(request))
    letters = await dlq.select(request.app.state.arq, settings.dead_letter_stream, chosen_filters, MAX_MATCH)
    return [d for d in letters if _order(d.id) <= _order(chosen.upto)] if chosen.upto else letters


@get("/dead-letters")
async def dead_letters_page(request: Request[Any, Any, Any], done: FromQuery[str] = "", number: PageNumber = "1",
                            destination: FromQuery[str] = "", account: FromQuery[str] = "",
                            reason: FromQuery[str] = "", type: FromQuery[str] = "", since: FromQuery[str] = "",
                            until: FromQuery[str] = "") -> Template:
    form = Form()
    chosen = Chosen(destination=destination, account=account, reason=reason, type=type, since=since, until=until)
    letters = list(reversed(await matching(request, chosen, form)))
    shown = paging.paged(letters, form.whole("page", number, 1, 1, 10**6))
    names = sorted({*request.app.state.destination_names, *data.dead_per_destination(letters)})
    accounts = filterable(request)
    return page("dead_letters.html", request, form, letters=shown, link=paging.links(request), done=done,
                chosen=chosen, kinds=KINDS, names=names, capped=len(letters) >= MAX_MATCH, clock=trace.clock,
                destination_of=data.destination_of, account_of=dlq.account_of, accounts=accounts)


@get("/dead-letters/confirm")
async def confirm_page(request: Request[Any, Any, Any], action: FromQuery[str] = "", destination: FromQuery[str] = "",
                       account: FromQuery[str] = "", reason: FromQuery[str] = "", type: FromQuery[str] = "",
                       since: FromQuery[str] = "", until: FromQuery[str] = "", id: FromQuery[str] = "") -> Template:
    form = Form()
    verb = form.choice("action", action, ACTIONS) or "replay"
    chosen = Chosen(destination=destination, account=account, reason=reason, type=type, since=since, until=until,
                    id=id)
    letters = await matching(request, chosen, form)
    return page("confirm.html", request, form, verb=verb, chosen=chosen, count=len(letters),
                upto=letters[-1].id if letters else "", capped=len(letters) >= MAX_MATCH)


@dataclass
class Outcome:
    done: int = 0
    refused: int = 0
    first_refusal: str = ""


async def _replay_all(request: Request[Any, Any, Any], letters: list[DeadLetter]) -> Outcome:
    settings: Settings = request.app.state.settings
    out = Outcome()
    for letter in letters:
        try:
            await dlq.replay(request.app.state.arq, settings.dead_letter_stream, letter.id,
                             queue_name=settings.queue_name, key_prefix=settings.key_prefix,
                             retention_s=settings.dead_letter_retention)
            out.done += 1
        except (KeyError, ValueError) as e:
            out.refused += 1
            out.first_refusal = out.first_refusal or f"{letter.id}: {e}"
    return out


@post("/dead-letters/matching/{action:str}", status_code=303)
async def matching_action(
    request: Request[Any, Any, Any], action: FromPath[str],
    data: Annotated[Chosen, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    """Replays or purges what the confirmation counted (never more: `upto` bounds it); says how many."""
    if (refusal := refused(request)) is not None:
        return refusal
    if action not in ACTIONS:
        return Response("unknown action", status_code=404)
    if not data.upto and not data.id:
        return Redirect(f"/dead-letters/confirm?{data.query(action=action)}", status_code=303)
    form = Form()
    letters = await matching(request, data, form)
    if form.errors:
        return page("confirm.html", request, form, verb=action, chosen=data, count=0, upto="", capped=False)
    if action == "purge":
        outcome = Outcome(done=await dlq.delete(request.app.state.arq, request.app.state.settings.dead_letter_stream,
                                                letters))
    else:
        outcome = await _replay_all(request, letters)
    done = f"{'replayed' if action == 'replay' else 'purged'} {outcome.done} of the {data.count or len(letters)} " \
           f"dead letter(s) counted ({data.described()})"
    if outcome.refused:
        done += f"; {outcome.refused} not replayed, e.g. {outcome.first_refusal}"
    log.info("console.dead_letters_action", action=action, filters=data.described(), done=outcome.done,
             refused=outcome.refused)
    return Redirect(f"/dead-letters?{Chosen(**{**msgspec.structs.asdict(data), 'id': ''}).query(done=done)}",
                    status_code=303)


@post("/dead-letters/{entry_id:str}/replay", status_code=303)
async def replay_one(request: Request[Any, Any, Any], entry_id: FromPath[str]) -> Response[Any]:
    settings: Settings = request.app.state.settings
    if (refusal := refused(request)) is not None:
        return refusal
    try:
        done = await dlq.replay(request.app.state.arq, settings.dead_letter_stream, entry_id,
                                queue_name=settings.queue_name, key_prefix=settings.key_prefix,
                                retention_s=settings.dead_letter_retention)
    except (KeyError, ValueError) as e:
        done = f"not replayed: {e}"
    log.info("console.dead_letter_action", action="replay", entry=entry_id, result=done)
    return Redirect(f"/dead-letters?done={quote(done)}")
