"""Attempts: what each delivery attempt sent and heard back, for the console (issue #23), secrets kept out.

    {prefix}attempts:{event_id}                 list of msgpack `Attempt`, every destination's, newest
                                                `KEPT` (a try's outcome, HTTP status, the response body's first
                                                KiB, ms); WEBHOOK_DEDUP_TTL, like the call's record
    {prefix}attempt-event:{event_id}            the event's JSON, written by the first attempt that FAILS
                                                (a delivered event is found in the event log instead: the
                                                console looks near its first attempt, console/attempts.py)
    {prefix}attempt-series:{destination}:{hour} hash `{minute_ms}:ok|fail` -> tries, kept SERIES_S (48 h): the
                                                destinations page's success/failure chart

The delivery step (workers/deliver/delivery.py `attempt_once`) opens a `Heard` with `listen()` before it
publishes; a sink that speaks HTTP tells it what it heard (`heard(...)`: workers/deliver/sinks/webhook.py), in a
context variable, so no sink signature changes; then the try is stored by ONE script: inside a job, the job's own
record script at its end (workers/operate/record.py: the try waits in the job's notes, and costs no round trip of its
own), else (a first attempt that outlived its job) `write`, through the worker's batching client
(contract/redisbatch.py), with the other commands of its loop turn. A try that never reached the destination
(paused, busy, throttled, delivered before) writes nothing.

Nothing secret is written: the request is described by its header names with the signature masked (never the
URL), the response body has URLs' user, password and query removed and anything like a signing secret or a
bearer token masked, and the console scrubs the event's JSON again when it shows it (`scrub_json`).
A try whose record cannot be written is logged and dropped: the record never fails a delivery.
"""

from __future__ import annotations

import re
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.exceptions import RedisError

from contract import logs

log = logs.get("workers.deliver.attempts")

KEPT = 50  # attempts per event, all destinations: 8 tries to each of 6 destinations
BODY_BYTES = 1024
SERIES_S = 48 * 3600
_SECRET_KEYS = re.compile(r"secret|token|password|passwd|signature|authorization|api[_-]?key|cookie", re.I)
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s@]*@)?(?P<rest>[^\s?#\"'<>]*)"
                  r"(?P<query>[?#][^\s\"'<>]*)?")
_TOKENS = re.compile(r"(whsec_[A-Za-z0-9+/=]+|v1,[A-Za-z0-9+/=]{20,}|Bearer\s+[A-Za-z0-9._~+/=-]+)")


class Attempt(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One try of one event at one destination."""

    at_ms: int  # when the try began
    destination: str
    event_id: str
    event_type: str = ""
    attempt: int = 1
    outcome: str = "delivered"  # delivered, transient, permanent, no outcome
    ok: bool = True
    status: int = 0  # the HTTP status heard (0: none, or not HTTP)
    response: str = ""  # the response body's first KiB, scrubbed
    request: str = ""  # what was sent besides the body: header names, the signature masked
    reason: str = ""
    ms: float = 0.0


encode_attempt = msgspec.msgpack.Encoder().encode
decode_attempt = msgspec.msgpack.Decoder(Attempt).decode


@dataclass
class Heard:
    """What the sink heard during one try; filled by `heard`, read by `Recorder.write`."""

    status: int = 0
    response: str = ""
    request: str = ""
    started: float = field(default_factory=time.perf_counter)
    at_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)


_current: ContextVar[Heard | None] = ContextVar("wavix_events_attempt_heard", default=None)


def listen() -> Heard:
    """Opens this try's `Heard` (the context variable is the attempt task's own)."""
    current = Heard()
    _current.set(current)
    return current


def heard(*, status: int = 0, body: bytes = b"", sent: dict[str, str] | None = None) -> None:
    """A sink's report of the exchange: status, the body (its first KiB kept), the headers it sent."""
    current = _current.get()
    if current is None:
        return
    current.status = status
    current.response = scrub_text(body[:BODY_BYTES].decode(errors="replace"))
    if sent is not None:
        current.request = ", ".join(f"{k}: {masked_header(k, v)}" for k, v in sent.items())


def masked_header(name: str, value: str) -> str:
    if _SECRET_KEYS.search(name):
        return value.split(",", 1)[0] + ",[scrubbed]" if "," in value else "[scrubbed]"
    return value


def scrub_text(text: str) -> str:
    """`text` without URLs' credentials and queries, signing secrets, signatures or bearer tokens."""
    text = _URL.sub(lambda m: m.group("scheme") + m.group("rest") + ("?[scrubbed]" if m.group("query") else ""),
                    text)
    return _TOKENS.sub("[scrubbed]", text)


def scrub_json(value: Any) -> Any:
    """A decoded JSON value with secret-named keys masked and every string scrubbed (`scrub_text`)."""
    if isinstance(value, dict):
        return {k: "[scrubbed]" if _SECRET_KEYS.search(str(k)) and v else scrub_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    return scrub_text(value) if isinstance(value, str) else value


def attempts_key(prefix: str, event_id: str) -> str:
    return f"{prefix}attempts:{event_id}"


def event_key(prefix: str, event_id: str) -> str:
    return f"{prefix}attempt-event:{event_id}"


def series_key(prefix: str, destination: str, hour_ms: int) -> str:
    return f"{prefix}attempt-series:{destination}:{hour_ms}"


# One try's write, a Lua function, so the per-call record's script writes a job's tries with its notes at the
# job's end (workers/operate/record.py `WRITE`). KEYS: the attempts list, the series hash, the event key; ARGV: the
# attempt, KEPT, ttl s, the series field, SERIES_S, the event JSON ('' none).
WRITE_ONE = """
local function attempt(KEYS, ARGV)
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
redis.call('EXPIRE', KEYS[2], ARGV[5])
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6], 'NX', 'EX', ARGV[3]) end
end
"""
_WRITE = WRITE_ONE + """
attempt(KEYS, ARGV)
return 1
"""
_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
Parts = tuple[list[str], list[Any]]


def parts(prefix: str, ttl_s: int, attempt: Attempt, event_json: bytes = b"") -> Parts:
    """`WRITE_ONE`'s keys and arguments for one try (the event's JSON kept only when it failed)."""
    minute = attempt.at_ms // 60_000 * 60_000
    keys = [attempts_key(prefix, attempt.event_id), series_key(prefix, attempt.destination, minute // 3_600_000 *
                                                               3_600_000), event_key(prefix, attempt.event_id)]
    args = [encode_attempt(attempt), KEPT, ttl_s, f"{minute}:{'ok' if attempt.ok else 'fail'}", SERIES_S,
            event_json if not attempt.ok else b""]
    return keys, args


async def write(scripts: Any, prefix: str, ttl_s: int, attempt: Attempt, event_json: bytes = b"") -> bool:
    """Stores one try (and the event's JSON when given) in one script call; False (logged) if Redis refused."""
    script = _scripts.get(scripts)
    if script is None:
        script = _scripts[scripts] = scripts.register_script(_WRITE)
    keys, args = parts(prefix, ttl_s, attempt, event_json)
    try:
        await script(keys=keys, args=args)
    except (RedisError, OSError) as e:
        log.warning("attempt.unwritten", event_id=attempt.event_id, sink=attempt.destination, error=type(e).__name__)
        return False
    return True
