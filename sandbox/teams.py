"""A local stand-in for a Teams Workflows webhook (a Power Automate flow's HTTP trigger), answering as it does.

    POST /workflows/<id>/triggers/manual/paths/invoke?api-version=2016-06-01&sp=...&sv=1.0&sig=<secret>

    202 Accepted, empty body            the flow took the message (it posts the card afterwards)
    401 DirectApiAuthorizationRequired  a wrong or missing `sig`
    404 WorkflowNotFound                another workflow, another path
    400 InvalidRequestContent           a body that is not JSON
    400 TriggerInputSchemaMismatch      JSON that is not a message with one Adaptive Card (the flow's trigger
                                        schema, as the "Post to a channel when a webhook request is received"
                                        template has it), or a card Teams would refuse to show
    413 RequestEntityTooLarge           over Teams' 28 KB for a message
    429 WorkflowRequestsThrottled       faster than `min_interval_s` apart, with `Retry-After`

Errors are Logic Apps' JSON, `{"error": {"code": ..., "message": ...}}`. The card rules are written from the
Adaptive Card and Teams documentation, not shared with the renderer (workers/alert/teams.py), so a renderer
bug cannot hide behind them. It records every request with the answer given, plays scripted answers first
(`script`), and with `echo` prints each accepted card as text (the demo shows them so).

Tests: `async with serve(standin) as base: url = standin.url(base)`. Demo: `python -m sandbox.teams`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

import msgspec

from sandbox import standin
from sandbox.api import read_body
from sandbox.slack import Answer, Received, serve

__all__ = ["Answer", "Received", "TeamsStandIn", "card_problems", "error", "render_text", "serve", "throttled"]

WORKFLOW = "9f3c2b1a0d8e4f6a8b7c6d5e4f3a2b1c"
PATH = f"/workflows/{WORKFLOW}/triggers/manual/paths/invoke"
SIG = "sandbox-teams-signature-0000000000000"
MESSAGE_MAX = 28 * 1024
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
_ELEMENTS = frozenset({"TextBlock", "FactSet", "Container", "ColumnSet", "Image", "ActionSet", "RichTextBlock"})
_ACTIONS = frozenset({"Action.OpenUrl", "Action.Submit", "Action.ShowCard", "Action.ToggleVisibility",
                      "Action.Execute"})


def error(status: int, code: str, message: str = "") -> Answer:
    """An answer as a Logic Apps trigger gives it: status and `{"error": {"code", "message"}}`."""
    body = msgspec.json.encode({"error": {"code": code, "message": message or code}})
    return Answer(status, body, "application/json")


def throttled(retry_after: int | None = 1) -> Answer:
    """429 as a throttled flow answers it, with `Retry-After` unless None."""
    headers = (("retry-after", str(retry_after)),) if retry_after is not None else ()
    body = msgspec.json.encode({"error": {"code": "WorkflowRequestsThrottled", "message": "Rate limit is exceeded."}})
    return Answer(429, body, "application/json", headers)


def _element_problems(element: Any, where: str) -> Iterator[str]:
    if not isinstance(element, dict) or element.get("type") not in _ELEMENTS:
        yield f"{where}: unknown element {element.get('type') if isinstance(element, dict) else element!r}"
        return
    kind = element["type"]
    if kind == "TextBlock" and not (isinstance(element.get("text"), str) and element["text"]):
        yield f"{where}: a TextBlock needs text"
    if kind == "FactSet":
        facts = element.get("facts")
        if not isinstance(facts, list) or not all(
                isinstance(f, dict) and isinstance(f.get("title"), str) and isinstance(f.get("value"), str)
                for f in facts):
            yield f"{where}: FactSet facts are {{title, value}} strings"
    if kind == "Container":
        for i, item in enumerate(element.get("items") or []):
            yield from _element_problems(item, f"{where}.items[{i}]")


def card_problems(message: Any) -> list[str]:
    """Why the flow (or Teams) would refuse this message; empty when it would post it."""
    if not isinstance(message, dict) or message.get("type") != "message":
        return ['not a message: {"type": "message", "attachments": [...]}']
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1 or not isinstance(attachments[0], dict):
        return ["a message needs exactly one attachment"]
    if attachments[0].get("contentType") != ADAPTIVE:
        return [f"attachment contentType must be {ADAPTIVE} (MessageCard is not supported by Workflows)"]
    card = attachments[0].get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard" or not isinstance(card.get("version"), str):
        return ["content must be an AdaptiveCard with a version"]
    problems: list[str] = []
    body = card.get("body")
    if not isinstance(body, list) or not body:
        problems.append("an AdaptiveCard needs a body")
    for i, element in enumerate(body or []):
        problems.extend(_element_problems(element, f"body[{i}]"))
    for i, action in enumerate(card.get("actions") or []):
        if not isinstance(action, dict) or action.get("type") not in _ACTIONS:
            problems.append(f"actions[{i}]: unknown action")
        elif action["type"] == "Action.OpenUrl" and not str(action.get("url", "")).startswith(("https://", "http://")):
            problems.append(f"actions[{i}]: Action.OpenUrl needs an absolute url")
    return problems


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("type") == "TextBlock":
            yield str(node.get("text", ""))
        if node.get("type") == "FactSet":
            yield from (f"  {f.get('title')}: {f.get('value')}" for f in node.get("facts") or [])
        if node.get("type") == "Action.OpenUrl":
            yield f"  [{node.get('title')}] {node.get('url')}"
        for key, value in node.items():
            if key != "facts":
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def render_text(message: Mapping[str, Any]) -> str:
    """A readable rendering of the message's card for a terminal."""
    return "\n".join(_texts(message.get("attachments") or []))


class TeamsStandIn:
    """The ASGI app. `received` holds every request; `script(...)` queues the next answers."""

    def __init__(self, *, sig: str = SIG, enforce_rate: bool = True, min_interval_s: float = 1.0,
                 tolerance_s: float = 0.02, echo: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.sig, self.enforce_rate, self.echo, self.clock = sig, enforce_rate, echo, clock
        self.min_interval_s, self.tolerance_s = min_interval_s, tolerance_s
        self.received: list[Received] = []
        self._script: deque[Answer] = deque()
        self._last_accepted: float | None = None

    def url(self, base_url: str) -> str:
        """The flow's webhook URL on this stand-in (what TEAMS_WEBHOOK_URL is set to)."""
        return f"{base_url}{PATH}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.sig}"

    def script(self, *answers: Answer) -> None:
        self._script.extend(answers)

    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status == 202]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        answer = self.handle(scope["method"], scope["path"], query, body)
        headers = [(b"content-type", answer.content_type.encode()), *((k.encode(), v.encode())
                                                                     for k, v in answer.headers)]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def handle(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Answer:
        """Decides the answer to one request and records it."""
        try:
            message = msgspec.json.decode(body)
        except msgspec.DecodeError:
            message = None
        answer = self._decide(method, path, query, body, message)
        now = self.clock()
        if answer.status == 202:
            self._last_accepted = now
            if self.echo:
                print(f"\n--- Teams at {time.strftime('%H:%M:%S')} ---\n{render_text(message)}", flush=True)
        self.received.append(Received(path=path, channel=WORKFLOW, message=message, arrived_at=now,
                                      status=answer.status, error=_code(answer)))
        return answer

    def _decide(self, method: str, path: str, query: Mapping[str, str], body: bytes, message: Any) -> Answer:
        if self._script:
            return self._script.popleft()
        if method != "POST" or path != PATH:
            return error(404, "WorkflowNotFound", "The workflow could not be found.")
        if query.get("sig") != self.sig:
            return error(401, "DirectApiAuthorizationRequired", "The request must be authenticated.")
        if message is None:
            return error(400, "InvalidRequestContent", "The input body for trigger 'manual' must be JSON.")
        if len(body) > MESSAGE_MAX:
            return error(413, "RequestEntityTooLarge", f"The message is over {MESSAGE_MAX} bytes.")
        problems = card_problems(message)
        if problems:
            return error(400, "TriggerInputSchemaMismatch", "; ".join(problems)[:500])
        last = self._last_accepted
        if self.enforce_rate and last is not None and self.clock() - last < self.min_interval_s - self.tolerance_s:
            return throttled(1)
        return Answer(202, b"", "text/plain")


def _code(answer: Answer) -> str:
    if answer.status < 400:
        return ""
    try:
        return str(msgspec.json.decode(answer.body)["error"]["code"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return answer.body.decode(errors="replace")


def run(host: str = "127.0.0.1", port: int = 8097, *, echo: bool = True) -> None:
    """Runs the stand-in in the foreground, printing each card it accepts."""
    teams = TeamsStandIn(echo=echo)
    standin.run_forever(teams, host, port, f"Teams stand-in: TEAMS_WEBHOOK_URL={teams.url(f'http://{host}:{port}')}")


def main(argv: list[str] | None = None) -> None:
    standin.main(argv, "A local stand-in for a Teams Workflows webhook", 8097, "the cards received", run)


if __name__ == "__main__":
    main()
