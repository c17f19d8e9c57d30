"""A local stand-in for Slack: incoming webhooks and `chat.postMessage`, answering the way Slack does.

    POST /services/T000/B000/XXXX     incoming webhook: 200 "ok", or a plain-text error
    POST /api/chat.postMessage        bot API: 200 {"ok": true, "channel": "C...", "ts": "..."}, or
                                      {"ok": false, "error": ...}; `thread_ts` replies in a thread

It records every request (with arrival time and the answer given), enforces about one message per second
per channel with 429 + `Retry-After: 1` like Slack, checks Block Kit limits with its own rules (written
from Slack's documentation, not shared with the renderer, so a renderer bug cannot hide behind them),
plays a queue of scripted answers for tests, and, when `echo` is on, prints each accepted message as
readable text (the demo shows alerts this way). Like Slack, the bot API answers with the channel's id
(`#alerts` -> `C...`, either may be posted to) and a `ts` unique in the channel; a reply whose `thread_ts`
is no message of that channel is refused `thread_not_found`, and `forget(channel, ts)` deletes a message.

Tests: `async with serve(standin) as base_url: ...`. Demo: `python -m sandbox.slack --port 8099`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import msgspec

from sandbox import standin
from sandbox.api import read_body

WEBHOOK_PATH = "/services/T000/B000/XXXX"
API_PATH = "/api/chat.postMessage"
TEXT_TOTAL_MAX = 12_000


class Answer(msgspec.Struct, frozen=True):
    """One HTTP answer: status, body, and headers such as Retry-After."""

    status: int
    body: bytes
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()


def webhook_error(status: int, error: str) -> Answer:
    """What an incoming webhook answers on failure: e.g. (404, "channel_not_found"), (500, "rollup_error")."""
    return Answer(status, error.encode())


def api_error(error: str, status: int = 200) -> Answer:
    """What the bot API answers on failure: 200 with `{"ok": false, "error": ...}`."""
    return Answer(status, msgspec.json.encode({"ok": False, "error": error}), "application/json")


def rate_limited(retry_after: int | None = 1) -> Answer:
    """429, with `Retry-After` unless None."""
    headers = (("retry-after", str(retry_after)),) if retry_after is not None else ()
    return Answer(429, b"rate_limited", headers=headers)


class Received(msgspec.Struct, kw_only=True):
    """One request as it arrived, and how it was answered."""

    path: str
    channel: str
    message: Any
    arrived_at: float  # monotonic seconds
    status: int
    error: str = ""


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def _block_problems(block: Any) -> list[str]:
    kind = block.get("type") if isinstance(block, dict) else None
    text = block.get("text") if isinstance(block, dict) else None
    body = text.get("text", "") if isinstance(text, dict) else ""
    if kind == "header":
        ok = isinstance(text, dict) and text.get("type") == "plain_text" and 0 < len(body) <= 150
        return [] if ok else ["header text must be plain_text of 1-150 chars"]
    if kind == "section":
        fields = block.get("fields") or []
        problems = ["section text over 3000 chars"] if len(body) > 3000 else []
        if not body and not fields:
            problems.append("section needs text or fields")
        if len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields):
            problems.append("section fields: at most 10 of 2000 chars")
        return problems
    if kind == "context":
        return [] if 0 < len(block.get("elements") or []) <= 10 else ["context needs 1-10 elements"]
    if kind == "actions":
        elements = block.get("elements") or []
        bad = [e for e in elements if len(e.get("text", {}).get("text", "")) > 75 or len(e.get("url", "")) > 3000]
        return ["actions: at most 25 elements, button text 75, url 3000"] if bad or len(elements) > 25 else []
    return [] if kind == "divider" else [f"unknown block type {kind!r}"]


def block_kit_problems(message: Mapping[str, Any]) -> list[str]:
    """Why Slack would refuse this message (empty when it would take it)."""
    problems: list[str] = []
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("no top-level text fallback")
    blocks = message.get("blocks") or []
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*problems, "blocks must be a list of at most 50"]
    for i, block in enumerate(blocks):
        problems.extend(f"block {i}: {p}" for p in _block_problems(block))
    if sum(len(t) for t in _texts(blocks)) > TEXT_TOTAL_MAX:
        problems.append(f"block text over {TEXT_TOTAL_MAX} chars")
    return problems


def channel_id(channel: str) -> str:
    """Slack's id for a channel named `#name` (as chat.postMessage returns it); an id stays itself."""
    if not channel.startswith("#"):
        return channel
    return "C" + hashlib.sha256(channel.encode()).hexdigest()[:10].upper()


def render_text(message: Mapping[str, Any]) -> str:
    """A readable rendering of a Block Kit message for a terminal."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"== {block['text']['text']} ==")
        elif kind == "section":
            if block.get("text"):
                lines.append(block["text"]["text"])
            fields = [f["text"].replace("*", "").replace("\n", ": ", 1) for f in block.get("fields") or []]
            lines.extend(
                f"  {fields[i]:<40} {fields[i + 1] if i + 1 < len(fields) else ''}".rstrip()
                for i in range(0, len(fields), 2)
            )
        elif kind == "actions":
            lines.extend(f"  [{e['text']['text']}] {e.get('url', '')}" for e in block.get("elements") or [])
        elif kind == "context":
            lines.append("  " + "  ".join(e.get("text", "") for e in block.get("elements") or []))
    text = "\n".join(lines or [str(message.get("text", ""))])
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")  # as Slack displays them


class SlackStandIn:
    """The ASGI app. `received` holds every request; `script(...)` queues the next answers."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        enforce_rate: bool = True,
        min_interval_s: float = 1.0,
        tolerance_s: float = 0.02,
        echo: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot_token, self.enforce_rate, self.echo, self.clock = bot_token, enforce_rate, echo, clock
        self.min_interval_s, self.tolerance_s = min_interval_s, tolerance_s
        self.received: list[Received] = []
        self._script: deque[Answer] = deque()
        self._last_accepted: dict[str, float] = {}
        self._posted: dict[str, set[str]] = {}  # channel id -> ts of its messages
        self._serial = itertools.count(1)

    def forget(self, channel: str, ts: str) -> None:
        """Deletes a posted message: a reply in its thread is refused `thread_not_found` from now on."""
        self._posted.get(channel_id(channel), set()).discard(ts)

    def thread(self, channel: str, ts: str) -> list[Received]:
        """The accepted replies in the thread of message `ts`."""
        return [r for r in self.accepted() if isinstance(r.message, dict) and r.message.get("thread_ts") == ts
                and channel_id(r.channel) == channel_id(channel)]

    def script(self, *answers: Answer) -> None:
        """The next requests get these answers, in order, before any other check."""
        self._script.extend(answers)

    def accepted(self, channel: str | None = None) -> list[Received]:
        return [r for r in self.received if r.status == 200 and not r.error and channel in (None, r.channel)]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        answer = self.handle(scope["method"], scope["path"], headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type.encode()),
                    *((k.encode(), v.encode()) for k, v in answer.headers),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Decides the answer to one request and records it."""
        api = path == API_PATH
        if method != "POST" or not (api or path.startswith("/services/")):
            return Answer(404, b"no_service")
        try:
            message = msgspec.json.decode(body)
        except msgspec.DecodeError:
            message = None
        channel = str(message.get("channel", "")) if api and isinstance(message, dict) else path
        answer, error = self._decide(api, headers, message, channel)
        now = self.clock()
        if answer.status == 200 and not error:
            self._last_accepted[channel_id(channel) if api else channel] = now
            if self.echo:
                print(f"\n--- Slack {channel} at {time.strftime('%H:%M:%S')} ---\n{render_text(message)}", flush=True)
        self.received.append(
            Received(path=path, channel=channel, message=message, arrived_at=now, status=answer.status, error=error)
        )
        return answer

    def _decide(self, api: bool, headers: Mapping[str, str], message: Any, channel: str) -> tuple[Answer, str]:
        if self._script:
            answer = self._script.popleft()
            return answer, answer.body.decode() if answer.status != 200 or api else ""
        if not isinstance(message, dict):
            return self._fail(api, "invalid_payload")
        if api and headers.get("authorization") != f"Bearer {self.bot_token}":
            return self._fail(api, "invalid_auth")
        if api and not channel:
            return self._fail(api, "channel_not_found")
        if block_kit_problems(message):
            return self._fail(api, "invalid_blocks")
        cid = channel_id(channel) if api else channel
        if api and "thread_ts" in message and str(message["thread_ts"]) not in self._posted.get(cid, set()):
            return self._fail(api, "thread_not_found")
        last = self._last_accepted.get(cid)
        if self.enforce_rate and last is not None and self.clock() - last < self.min_interval_s - self.tolerance_s:
            return rate_limited(1), "rate_limited"
        if not api:
            return Answer(200, b"ok"), ""
        ts = f"{int(time.time())}.{next(self._serial):06d}"
        self._posted.setdefault(cid, set()).add(ts)
        return Answer(200, msgspec.json.encode({"ok": True, "channel": cid, "ts": ts}), "application/json"), ""

    @staticmethod
    def _fail(api: bool, error: str) -> tuple[Answer, str]:
        return (api_error(error) if api else webhook_error(400, error)), error


@contextlib.asynccontextmanager
async def serve(standin: Callable[..., Awaitable[None]], host: str = "127.0.0.1", port: int = 0
                ) -> AsyncIterator[str]:
    """Serves `standin` (this one, or another service's: sandbox/teams.py, sandbox/pagerduty.py) on a loopback
    port (a free one by default) in this event loop; yields its base URL."""
    import uvicorn  # a test and demo dependency only

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(standin, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
            await asyncio.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def run(host: str = "127.0.0.1", port: int = 8099, *, echo: bool = True) -> None:
    """Runs the stand-in in the foreground for the demo, printing each alert it receives."""
    standin.run_forever(SlackStandIn(echo=echo), host, port,
                        f"Slack stand-in: SLACK_WEBHOOK_URL=http://{host}:{port}{WEBHOOK_PATH}",
                        f"                SLACK_API_URL=http://{host}:{port}/api (bot token xoxb-test-token)")


def main(argv: list[str] | None = None) -> None:
    standin.main(argv, "A local stand-in for Slack webhooks and chat.postMessage", 8099, "the alerts received", run)


if __name__ == "__main__":
    main()
