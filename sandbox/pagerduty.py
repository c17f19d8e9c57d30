"""A local stand-in for PagerDuty's Events API v2, answering as it does, and keeping the incidents it opened.

    POST /v2/enqueue   {"routing_key", "event_action": trigger|acknowledge|resolve, "dedup_key", "payload"}

    202 {"status": "success", "message": "Event processed", "dedup_key": ...}
    400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}   malformed, for good
    429 {"status": "throttle event", "message": "..."} with Retry-After     over `per_minute` events a minute

Checks written from PagerDuty's documentation (not shared with workers/alert/pagerduty.py): a 32-character
routing key this stand-in was given, a known action, for a trigger a payload with `summary` (at most 1,024),
`source` and a `severity` of critical, error, warning or info, a `dedup_key` of at most 255. Like PagerDuty, a
trigger with an open key adds to that alert, a resolve closes it, and a trigger after the resolve opens a new
one: `alerts` keeps each alert's events, `open_alerts()` those still open. Scripted answers come first
(`script`); `echo` prints each accepted event (the demo shows them so).

Tests: `async with serve(standin) as base: url = base + PATH`. Demo: `python -m sandbox.pagerduty`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from sandbox import standin
from sandbox.api import read_body
from sandbox.slack import Answer, Received, serve

__all__ = ["PATH", "ROUTING_KEY", "Answer", "PagerDutyStandIn", "Received", "invalid", "serve", "throttled"]

PATH = "/v2/enqueue"
ROUTING_KEY = "R0UT1NGKEYSANDBOX000000000000001"  # 32 characters, as PagerDuty's integration keys
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


def invalid(*errors: str) -> Answer:
    body = {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}
    return Answer(400, msgspec.json.encode(body), "application/json")


def throttled(retry_after: int | None = 1) -> Answer:
    headers = (("retry-after", str(retry_after)),) if retry_after is not None else ()
    body = {"status": "throttle event", "message": "Requests for this service are arriving too quickly. "
                                                   "Please retry later."}
    return Answer(429, msgspec.json.encode(body), "application/json", headers)


@dataclass
class PdAlert:
    """One PagerDuty alert: its dedup key, the events applied to it, and whether it is still open."""

    dedup_key: str
    events: list[dict[str, Any]] = field(default_factory=list)
    open: bool = True


def event_problems(event: Any, routing_keys: frozenset[str]) -> list[str]:
    """Why PagerDuty would refuse this event; empty when it would take it."""
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        return ["Length of 'routing_key' is incorrect (should be 32 characters)"]
    if key not in routing_keys:
        return ["Invalid routing key"]
    action = event.get("event_action")
    if action not in ACTIONS:
        return ["'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"]
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        return ["'dedup_key' must be a string of at most 255 characters"]
    if action != "trigger":
        return [] if dedup else ["'dedup_key' is required for acknowledge and resolve events"]
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return ["'payload' is missing or blank"]
    problems = [f"'payload.{name}' is missing or blank" for name in ("summary", "source", "severity")
                if not isinstance(payload.get(name), str) or not payload[name].strip()]
    if isinstance(payload.get("summary"), str) and len(payload["summary"]) > 1024:
        problems.append("'payload.summary' is longer than 1024 characters")
    if payload.get("severity") not in SEVERITIES and "'payload.severity' is missing or blank" not in problems:
        problems.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
    return problems


class PagerDutyStandIn:
    """The ASGI app. `received` holds every request; `alerts` the alerts by dedup key."""

    def __init__(self, *, routing_keys: tuple[str, ...] = (ROUTING_KEY,), per_minute: int = 120,
                 min_interval_s: float = 0.0, echo: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.routing_keys, self.per_minute, self.min_interval_s = frozenset(routing_keys), per_minute, min_interval_s
        self.echo, self.clock = echo, clock
        self.received: list[Received] = []
        self.alerts: dict[str, PdAlert] = {}
        self._script: deque[Answer] = deque()
        self._accepted_at: deque[float] = deque()
        self._serial = 0

    def script(self, *answers: Answer) -> None:
        self._script.extend(answers)

    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status == 202]

    def open_alerts(self) -> list[PdAlert]:
        return [a for a in self.alerts.values() if a.open]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        answer = self.handle(scope["method"], scope["path"], body)
        headers = [(b"content-type", answer.content_type.encode()), *((k.encode(), v.encode())
                                                                     for k, v in answer.headers)]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def handle(self, method: str, path: str, body: bytes) -> Answer:
        try:
            event = msgspec.json.decode(body)
        except msgspec.DecodeError:
            event = None
        answer = self._decide(method, path, event)
        now = self.clock()
        if answer.status == 202:
            self._apply(event)
            self._accepted_at.append(now)
        shown = {k: v for k, v in event.items() if k != "routing_key"} if isinstance(event, dict) else event
        self.received.append(Received(path=path, channel=str(shown.get("dedup_key", "")) if isinstance(shown, dict)
                                      else "", message=shown, arrived_at=now, status=answer.status,
                                      error="" if answer.status == 202 else answer.body.decode()))
        return answer

    def _decide(self, method: str, path: str, event: Any) -> Answer:
        if self._script:
            return self._script.popleft()
        if method != "POST" or path != PATH:
            return Answer(404, b'{"status":"not found"}', "application/json")
        if event is None:
            return invalid("Event object is invalid: the body is not JSON")
        problems = event_problems(event, self.routing_keys)
        if problems:
            return invalid(*problems)
        now = self.clock()
        while self._accepted_at and now - self._accepted_at[0] > 60:
            self._accepted_at.popleft()
        too_soon = self._accepted_at and now - self._accepted_at[-1] < self.min_interval_s
        if len(self._accepted_at) >= self.per_minute or too_soon:
            return throttled(1)
        dedup = event.get("dedup_key") or self._new_key()
        event["dedup_key"] = dedup
        body = {"status": "success", "message": "Event processed", "dedup_key": dedup}
        return Answer(202, msgspec.json.encode(body), "application/json")

    def _new_key(self) -> str:
        self._serial += 1
        return f"sandbox-{self._serial:08d}"

    def _apply(self, event: Mapping[str, Any]) -> None:
        """Trigger opens (or adds to) the key's open alert, resolve closes it; a resolve of no open alert is dropped."""
        key, action = str(event["dedup_key"]), event["event_action"]
        current = self.alerts.get(key)
        if action == "trigger" and (current is None or not current.open):
            current = self.alerts[key] = PdAlert(key)
        if current is None or not current.open:
            return
        current.events.append(dict(event))
        if action == "resolve":
            current.open = False
        if self.echo:
            summary = (event.get("payload") or {}).get("summary", "")
            print(f"\n--- PagerDuty {action} {key} at {time.strftime('%H:%M:%S')} ---\n{summary}", flush=True)


def run(host: str = "127.0.0.1", port: int = 8098, *, echo: bool = True) -> None:
    """Runs the stand-in in the foreground, printing each event it accepts."""
    standin.run_forever(PagerDutyStandIn(echo=echo), host, port,
                        f"PagerDuty stand-in: PAGERDUTY_URL=http://{host}:{port}{PATH}"
                        f" PAGERDUTY_ROUTING_KEY={ROUTING_KEY}")


def main(argv: list[str] | None = None) -> None:
    standin.main(argv, "A local stand-in for PagerDuty's Events API v2", 8098, "the events received", run)


if __name__ == "__main__":
    main()
