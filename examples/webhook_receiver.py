"""Receive wavix-events as signed webhooks: verify with `standardwebhooks`, answer fast, drop repeats by event id.

    WEBHOOK_SECRET=whsec_... python -m examples.webhook_receiver --port 8080

Each event is POSTed with the Standard Webhooks headers `webhook-id`, `webhook-timestamp` and
`webhook-signature` (docs/asyncapi.yaml). `Webhook.verify` checks the signature with the destination's
secret and refuses timestamps more than 5 minutes off (replays); we answer 401 to those. Anything else
gets 204 once handled: a 5xx or no answer makes the sender retry with the same `webhook-id` and the same
event `id`, so we skip ids handled already. Uses the standard library's HTTP server and `standardwebhooks`.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Handler = Callable[[dict[str, Any]], None]


class Seen:
    """The last `size` event ids handled, in memory and thread-safe: a restart forgets them (keep them in your
    database if a repeat after a restart would hurt, or make handling idempotent)."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self.lock = threading.Lock()  # hold it across check, handle and add: requests run in threads

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)


def make_server(host: str, port: int, secret: str, handle: Handler) -> ThreadingHTTPServer:
    """An HTTP server (not started) that verifies, deduplicates and hands each event to `handle`."""
    webhook, seen = Webhook(secret), Seen()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                event = webhook.verify(body, dict(self.headers.items()))
            except WebhookVerificationError:
                self.answer(401)  # not signed with our secret, or too old: never handle it
                return
            with seen.lock:
                if event["id"] not in seen:
                    handle(event)  # an exception here answers 500: the sender retries later
                    seen.add(event["id"])
            self.answer(204)

        def answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
            pass

    return ThreadingHTTPServer((host, port), Receiver)


def print_event(event: dict[str, Any]) -> None:
    if event["type"] == "wavix.call.erased":  # the call was erased: delete what you keep of it (issue #25)
        print("erase", event["subject"], *event["data"]["event_ids"], flush=True)
        return
    print(event["type"], event["subject"], event["data"].get("outcome"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = make_server(args.host, args.port, os.environ["WEBHOOK_SECRET"], print_event)
    print(f"listening on http://{args.host}:{server.server_port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
