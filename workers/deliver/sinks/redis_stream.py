"""Redis Streams sink: XADD behind a "delivered" mark, both in one Lua script, so a repeat appends nothing.

`redis://127.0.0.1:6379/0?stream=wavix:events&maxlen=100000`: `stream` is the stream key, `maxlen` its
approximate cap (`MAXLEN ~`, default 1,000,000). The mark `{key_prefix}published:{idempotency_key}` (TTL
`mark_ttl_s`) means "in the stream": the script checks it, appends, and only then sets it. Lua does not
roll back, so a mark set before a refused XADD (WRONGTYPE, NOPERM) would outlive the failure and make the
dead letter's replay report success while appending nothing; set after, it exists only beside its entry.

On the ledger's own Redis (the default destination: EVENTS_STREAM beside the queue), a try's delivered settle
comes with the append (workers/deliver/ledger.py `Offer`): `_PUBLISH_SETTLED` appends, sets the mark, and
settles (delivered mark, health, lease back) in the same script, so a delivery there costs the claim and this
one call, where the append and the settle were two (docs/benchmarks.md, "Redis round trips per call"). A worker
killed around it leaves either nothing (the lease runs out, the next try appends) or all of it (the next try's
claim answers "delivered"). A sink whose URL names another Redis, or the same one spelled differently, appends
alone and the ledger settles after it, as before.

Entry fields: `event` (the CloudEvents JSON), `id` (the event id), `type`, `call_id`.

Errors: connection refused/reset, timeouts, LOADING/BUSY/OOM/READONLY/MASTERDOWN/TRYAGAIN replies are
Transient; any other error reply (WRONGTYPE: the key is not a stream; NOPERM) is Permanent.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contract import logs
from contract.events import CloudEvent, encode_event
from contract.redisbatch import BatchedRedis
from workers.deliver import ledger
from workers.deliver.sinks.base import SinkOptions, permanent, query_params, transient, without_params
from workers.retry import CallError

log = logs.get("workers.deliver.sinks.redis_stream")

DEFAULT_MAXLEN = 1_000_000
_OUR_PARAMS = frozenset({"stream", "maxlen"})
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")

_PUBLISH = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                         'event', ARGV[3], 'id', ARGV[4], 'type', ARGV[5], 'call_id', ARGV[6])
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return entry
"""
# The same, then the ledger's settle (`ledger.WITH_SETTLE`): KEYS[3..6] and ARGV[7..13] are the offer's. A repeat
# (the mark there already) appends nothing and still settles: the entry is in the stream.
_PUBLISH_SETTLED = ledger.WITH_SETTLE + """
local entry = false
if redis.call('EXISTS', KEYS[1]) == 0 then
  entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                     'event', ARGV[3], 'id', ARGV[4], 'type', ARGV[5], 'call_id', ARGV[6])
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
end
settle({KEYS[3], KEYS[4], KEYS[5], KEYS[6]}, {ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13]})
return entry
"""


class RedisStreamSink:
    """One stream; its own client (contract/redisbatch.py: the appends of concurrent jobs go out together, and
    a lost connection is dialled again on the next one)."""

    def __init__(self, url: str, *, name: str, options: SinkOptions) -> None:
        params = query_params(url)
        self.name = name
        self.stream = params["stream"]
        self._maxlen = int(params.get("maxlen") or DEFAULT_MAXLEN)
        self._url = without_params(url, _OUR_PARAMS)
        self._options = options
        timeout = options.timeout_s  # connects on first use, and again after a lost connection
        self._redis = BatchedRedis(self._url, connect_timeout=timeout, timeout=timeout)
        self._script = self._redis.register_script(_PUBLISH)
        self._settled = self._redis.register_script(_PUBLISH_SETTLED)

    async def connect(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as e:
            raise self._error(e, None) from e

    async def publish(self, event: CloudEvent, *, idempotency_key: str) -> None:
        keys = [f"{self._options.key_prefix}published:{idempotency_key}", self.stream]
        args: list[str | int | bytes] = [self._options.mark_ttl_s, self._maxlen, encode_event(event), event.id,
                                         event.type, event.subject]
        offer = ledger.offered()  # settled here when the ledger's Redis is this one
        try:
            if offer is not None and without_params(offer.url, _OUR_PARAMS) == self._url:
                entry = await self._settled(keys=[*keys, *offer.keys], args=[*args, *offer.args])
                offer.taken = True
            else:
                entry = await self._script(keys=keys, args=args)
        except RedisError as e:
            raise self._error(e, event) from e
        if entry is None:
            log.debug("sink.duplicate", sink=self.name, event_id=event.id, call_id=event.subject)

    async def close(self) -> None:
        await self._redis.aclose()

    def _error(self, e: RedisError, event: CloudEvent | None) -> CallError:
        if isinstance(e, RedisConnectionError | RedisTimeoutError):
            return transient(self.name, event, f"redis unreachable ({type(e).__name__})")
        if isinstance(e, ResponseError):
            reply = str(e).split(" ", 1)[0].upper()
            if reply in _TRANSIENT_REPLIES:
                return transient(self.name, event, f"redis busy ({reply})")
            return permanent(self.name, event, f"redis refused the entry ({reply})")
        return transient(self.name, event, f"redis error ({type(e).__name__})")


def create(url: str, *, name: str, secret: str | None, options: SinkOptions) -> RedisStreamSink:
    """The factory `workers.deliver.sinks.base.build_sink` calls for redis:// and rediss:// (no secret used)."""
    return RedisStreamSink(url, name=name, options=options)
