"""The two receivers behind one address, as a load balancer puts them: round robin, and past one that fails.

Wavix sends each webhook once, to one URL: in front of several receivers stands a load balancer. This is
that balancer, as an httpx transport of the Wavix host's client (chaos/ha/wavix.py): each POST goes to the
next receiver in turn; a receiver that does not answer (no connection within the client's connect timeout,
or the connection lost or silent before an answer) is passed over for PAUSE_S (a passive health check, as
nginx's `max_fails`/`fail_timeout`), and the POST goes to the next one. Sending it again is safe: the
receivers drop a webhook they have already taken by its call and event. An answer, any status, is final:
a 503 from a receiver that has no Redis primary for a moment goes back to Wavix, which never retries, and
the call is left to reconciliation. Counted: POSTs per receiver, POSTs passed to another receiver, and POSTs
no receiver answered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

import httpx

PAUSE_S = 5.0


class Balancer(httpx.AsyncBaseTransport):
    """Round robin over `origins` (`http://HOST:PORT`); a request's own origin is replaced by the chosen one."""

    def __init__(self, origins: Sequence[str], *, pause_s: float = PAUSE_S,
                 transport: Callable[[], httpx.AsyncBaseTransport] = httpx.AsyncHTTPTransport,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not origins:
            raise ValueError("a balancer needs at least one origin")
        self.origins = [httpx.URL(o) for o in origins]
        self.transports = [transport() for _ in origins]
        self.pause_s, self.clock = pause_s, clock
        self.down_until = [0.0] * len(origins)
        self.turn = 0
        self.answered: Counter[str] = Counter()  # POSTs answered, per origin
        self.rerouted = 0  # POSTs one receiver did not answer and another was asked
        self.unanswered = 0  # POSTs no receiver answered

    def order(self) -> list[int]:
        """The receivers to ask, in order: starting at this turn's, the ones not paused first."""
        n = len(self.origins)
        start, self.turn = self.turn, (self.turn + 1) % n
        rotation = [(start + k) % n for k in range(n)]
        now = self.clock()
        return [i for i in rotation if self.down_until[i] <= now] + [i for i in rotation if self.down_until[i] > now]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        choices = self.order()
        for attempt, i in enumerate(choices):
            origin = self.origins[i]
            request.url = request.url.copy_with(scheme=origin.scheme, host=origin.host, port=origin.port)
            request.headers["host"] = origin.netloc.decode()
            try:
                response = await self.transports[i].handle_async_request(request)
            except httpx.TransportError:
                self.down_until[i] = self.clock() + self.pause_s
                if attempt + 1 == len(choices):
                    self.unanswered += 1
                    raise
                self.rerouted += 1
                continue
            self.answered[str(origin)] += 1
            return response
        raise AssertionError("unreachable: the loop answers or raises")

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()

    def stats(self) -> dict[str, object]:
        return {"answered": dict(self.answered), "rerouted": self.rerouted, "unanswered": self.unanswered}
