"""The sandbox's accounts: a master account and its sub-accounts, each with its own key, calls and call webhooks.

    GET    /v1/sub-organizations[?status=enabled|disabled&page&per_page]   `SubAccountsListResponse` (master key)
    GET    /v1/sub-organizations/{id}                                       `SubOrganizationResponse`
    GET    /v1/calls/webhooks                   `CallWebhookListResponse`: the key's account's call webhooks
    POST   /v1/calls/webhooks {url, event_type} 201 `CallWebhook`; replaces that event type's URL
    DELETE /v1/calls/webhooks?event_type=       200 `SuccessResponse`; 422 when none is set for it

The config's `api_key` is the master account's (account id `MASTER`, 0 here); `SandboxConfig.sub_accounts` lists
the others. A key sees only its own account's calls (a CDR of another account is 404, as Wavix answers for a call
it does not know), its own listings and its own webhooks; only the master key lists sub-accounts (a
sub-account's key gets an empty list, having none). Calls are placed into an account (`Sandbox.place(n,
account=id)`, `POST /_sandbox/calls?count=n&account=id`), and faults can be set per account
(`PUT /_sandbox/faults?account=id`), so one account can fail while the others answer.
`POST` of a body the spec does not allow (missing `url`, an unknown `event_type`, a URL that is not absolute)
is 400 `Missing or invalid parameter <name>`.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import msgspec

from sandbox import wire
from sandbox.asgi import Request, Send, respond
from sandbox.config import SubAccountConfig

if TYPE_CHECKING:
    from sandbox.state import Sandbox

MASTER = 0
MASTER_ORGANIZATION = 4242  # the master account's organization id, as sub-accounts name it
EVENT_TYPES = ("post-call", "on-call")
CREATED_AT = "2026-01-05T09:30:00Z"


def account_of(sandbox: Sandbox, given: bytes) -> int | None:
    """The account whose key `given` is (MASTER for the config's key), None for no account's."""
    found = None
    for account, key in ((MASTER, sandbox.config.api_key), *((s.id, s.api_key) for s in sandbox.config.sub_accounts)):
        if hmac.compare_digest(given, key.encode()):
            found = account
    return found


def key_of(sandbox: Sandbox, account: int) -> str:
    if account == MASTER:
        return sandbox.config.api_key
    return next(s.api_key for s in sandbox.config.sub_accounts if s.id == account)


def organization(sub: SubAccountConfig) -> wire.Body:
    """`SubOrganizationResponse`."""
    return {"id": sub.id, "created_at": CREATED_AT, "name": sub.name, "api_key": sub.api_key,
            "master_organization": MASTER_ORGANIZATION, "status": sub.status,
            "default_destinations": {"sms_endpoint": "https://example.com/sms", "dlr_endpoint": "https://example.com/dlr"}}


async def answer(sandbox: Sandbox, request: Request, route: str, account: int, arg: str, body: bytes,
                 send: Send) -> int:
    """The sub-account and call-webhook endpoints; returns the status sent."""
    if route == "sub_orgs":
        return await _list(sandbox, request, account, send)
    if route == "sub_org":
        subs = [s for s in sandbox.config.sub_accounts if str(s.id) == arg and account == MASTER]
        if not subs:
            await respond(send, 404, wire.encode(wire.error("Record not found")))
            return 404
        await respond(send, 200, wire.encode(organization(subs[0])))
        return 200
    return await _webhooks(sandbox, request, account, body, send)


async def _list(sandbox: Sandbox, request: Request, account: int, send: Send) -> int:
    status = request.query.get("status")
    page, per_page = request.query.get("page", "1"), request.query.get("per_page", "25")
    if status not in (None, "enabled", "disabled") or not page.isdigit() or not per_page.isdigit() \
            or int(page) < 1 or int(per_page) < 1:
        name = "status" if status not in (None, "enabled", "disabled") else "page"
        await respond(send, 400, wire.encode(wire.error(f"Missing or invalid parameter {name}")))
        return 400
    subs = [s for s in sandbox.config.sub_accounts if account == MASTER and (status is None or s.status == status)]
    first, size = (int(page) - 1) * int(per_page), int(per_page)
    total_pages = max(1, -(-len(subs) // size))
    await respond(send, 200, wire.encode({
        "sub_organizations": [organization(s) for s in subs[first:first + size]],
        "pagination": {"current_page": int(page), "per_page": size, "total": len(subs), "total_pages": total_pages},
    }))
    return 200


async def _webhooks(sandbox: Sandbox, request: Request, account: int, body: bytes, send: Send) -> int:
    hooks = sandbox.call_webhooks.setdefault(account, {})
    if request.method == "GET":
        await respond(send, 200, wire.encode([{"event_type": t, "url": u} for t, u in sorted(hooks.items())]))
        return 200
    if request.method == "DELETE":
        event_type = request.query.get("event_type", "")
        if event_type not in EVENT_TYPES or event_type not in hooks:
            status, answer_body = (400, wire.error("Missing or invalid parameter event_type")) \
                if event_type not in EVENT_TYPES else (422, wire.error("No webhook for this event type"))
            await respond(send, status, wire.encode(answer_body))
            return status
        del hooks[event_type]
        await respond(send, 200, wire.encode({"success": True}))
        return 200
    try:
        asked = msgspec.json.decode(body, type=dict[str, str])
    except msgspec.MsgspecError:
        asked = {}
    url, event_type = asked.get("url", ""), asked.get("event_type", "")
    bad = "event_type" if event_type not in EVENT_TYPES else ("url" if not _absolute(url) else "")
    if bad or set(asked) - {"url", "event_type"}:
        await respond(send, 400, wire.encode(wire.error(f"Missing or invalid parameter {bad or 'body'}")))
        return 400
    hooks[event_type] = url
    await respond(send, 201, wire.encode({"success": True, "event_type": event_type, "url": url}))
    return 201


def _absolute(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
