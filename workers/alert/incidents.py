"""Incidents: the pipeline's own trouble, one alert when it opens and one when it resolves, never a flood.

    every worker, every few seconds: check_pipeline
      destination health (workers/deliver/health.py) ──> destination_failing  failing longer than FAILING_AFTER
                                                    ──> destination_paused   paused, by hand or auto-disabled
                                                    ──> dead_letters         deliveries dead-lettered (the count;
                                                                             resolved after an hour without more)
      failing its `disable_after` (routing file; default DESTINATION_DISABLE_AFTER, 5 days) since it failed or
      was resumed: paused (auto-disable), and
      `wavix-events resume` delivers its backlog (workers/deliver/control.py)
      {prefix}transcripts:not_provisioned ─────────────> transcripts_not_provisioned   (set by workers/process.py)
      {prefix}signal:missed_webhooks (reconciliation) ─> missed_webhooks      (the count of its last pass)
      {prefix}signal:wavix_auth (a job's dead letter) ──> wavix_auth           Wavix answered 401/403 to our key;
                                                                             resolved after 15 min without one
    ──> {prefix}incidents:open (HASH)  opened with HSETNX: one worker wins, once
    ──> {prefix}incidents:closed (HASH) moved there atomically when it ends, kept a day
    ──> each open incident's alert and each closed one's resolve, queued every pass: the outbox's once-per-key
        mark makes that one message each, and a worker that died between the two steps is made good by the next
    ──> each incident's `wavix.ops.<kind>.opened` and `.resolved` CloudEvents, to the destinations that subscribe
        (workers/alert/ops.py): once each, by the same reasoning

An incident's alert is a `pipeline:<kind>` Alert whose call_id is the incident's id (`kind:subject:opened_ms`),
routed by ALERT_RULES (`pipeline=pagerduty`, `pipeline:dead_letters=email`); PagerDuty's trigger and resolve share
that id as dedup_key (workers/alert/pagerduty.py). Every worker checks (it is a few reads): there is no leader to
lose, and the opening and closing scripts decide races in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contract import logs
from contract.ops import PipelineIncident
from workers.alert import ops
from workers.alert.alerting import Alerting
from workers.alert.rules import Alert
from workers.deliver import control, health
from workers.deliver.route import Destination

log = logs.get("workers.alert.incidents")

HOUR_MS = 3_600_000
CLOSED_KEPT_MS = 24 * HOUR_MS
KEPT_S = 7 * 86_400  # the incidents' keys, from the last check: they end a week after no worker checks any more
_RESOLVE = """
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return rec
"""


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    """One incident of the pipeline; times are Redis's clock in ms."""

    kind: str
    subject: str = ""  # a destination's name, "" for the pipeline as a whole
    opened_ms: int
    title: str
    detail: str = ""
    count: int = 0  # dead letters, missed webhooks
    last_ms: int = 0  # when its count last grew
    closed_ms: int = 0

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.subject}:{self.opened_ms}"


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Incident).decode


def keys(prefix: str) -> tuple[str, str]:
    return f"{prefix}incidents:open", f"{prefix}incidents:closed"


def signal_key(prefix: str, kind: str) -> str:
    return f"{prefix}signal:{kind}"


async def missed_webhooks(redis: Redis, prefix: str, count: int, ttl_s: int = 86_400) -> None:
    """Reconciliation's pass says how many webhooks it found missing (0 ends the incident)."""
    await redis.set(signal_key(prefix, "missed_webhooks"), count, ex=ttl_s)


_REFUSED = re.compile(r" -> (401|403): ")
WAVIX_AUTH_QUIET_S = 900


async def note_dead_letter(redis: Redis, prefix: str, kind: str, reason: str) -> None:
    """A job dead-lettered because Wavix refused our key (401, or 403 outside transcripts): a `wavix_auth`
    incident, open until no such refusal came for WAVIX_AUTH_QUIET_S."""
    if kind != "deliver" and _REFUSED.search(reason):
        await redis.set(signal_key(prefix, "wavix_auth"), reason[:300], ex=WAVIX_AUTH_QUIET_S)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _span(ms: int) -> str:
    """A failing time as an operator reads it: 144 h, 25 min, 3 s."""
    return f"{ms // 3_600_000} h" if ms >= 3_600_000 else f"{ms // 60_000} min" if ms >= 60_000 else f"{ms // 1000} s"


def alert_of(incident: Incident, console_url: str = "", resolved: bool = False) -> Alert:
    detail = incident.detail if not resolved else f"Resolved. {incident.detail}".strip()
    link = f"{console_url.rstrip('/')}/destinations" if console_url and incident.subject else None
    return Alert(call_id=incident.id, reason=f"pipeline:{incident.kind}", occurred_at=_iso(
        incident.closed_ms if resolved else incident.opened_ms), title=incident.title, detail=detail,
        resolved=resolved, link=link)


class Pass:
    """One check: what should be open now; opens, updates and resolves in Redis."""

    def __init__(self, redis: Redis, prefix: str, now_ms: int) -> None:
        self.redis, self.prefix, self.now_ms = redis, prefix, now_ms
        self.open_key, self.closed_key = keys(prefix)

    async def open(self, kind: str, subject: str, title: str, detail: str = "", count: int = 0) -> bool:
        """Opens the incident unless it is open; an open one takes the new title, detail and count."""
        field = f"{kind}:{subject}"
        new = Incident(kind=kind, subject=subject, opened_ms=self.now_ms, title=title, detail=detail, count=count,
                       last_ms=self.now_ms)
        if await self.redis.hsetnx(self.open_key, field, _encode(new)):  # type: ignore[misc, arg-type]
            log.warning("incident.opened", kind=kind, subject=subject, title=title)
            return True
        raw = await self.redis.hget(self.open_key, field)  # type: ignore[misc]
        if raw is not None:
            old = _decode(raw)
            grown = count > old.count
            updated = msgspec.structs.replace(old, title=title, detail=detail, count=count,
                                              last_ms=self.now_ms if grown else old.last_ms)
            if updated != old:
                await self.redis.hset(self.open_key, field, _encode(updated))  # type: ignore[misc, arg-type]
        return False

    async def current(self, kind: str, subject: str) -> Incident | None:
        raw = await self.redis.hget(self.open_key, f"{kind}:{subject}")  # type: ignore[misc]
        return _decode(raw) if raw is not None else None

    async def resolve(self, kind: str, subject: str) -> bool:
        """Ends the incident if open (atomically: one worker resolves it)."""
        found = await self.current(kind, subject)
        if found is None:
            return False
        closed = msgspec.structs.replace(found, closed_ms=self.now_ms)
        moved = await self.redis.register_script(_RESOLVE)(keys=[self.open_key, self.closed_key],
                                                           args=[f"{kind}:{subject}", closed.id, _encode(closed)])
        if moved:
            log.info("incident.resolved", kind=kind, subject=subject)
        return bool(moved)


async def _destination(p: Pass, row: health.Health, failing_after_ms: int, disable_after_ms: int,
                       seen: int | None, resumed_ms: int) -> None:
    name, since = row.name, row.failing_since_ms
    failing_ms = p.now_ms - since if since else 0
    if since and failing_ms >= failing_after_ms:
        await p.open("destination_failing", name, f"Destination {name} failing for {failing_ms // 60_000} min",
                     f"{row.streak} failed tries in a row; last error: {row.last_error[:200]}")
    else:
        await p.resolve("destination_failing", name)
    # Auto-disable: failing all along for its disable_after (counted again from a `resume`).
    disabled = bool(disable_after_ms and since and p.now_ms - max(since, resumed_ms) >= disable_after_ms)
    paused = row.paused
    if disabled and not paused and await control.pause(p.redis, p.prefix, name):
        log.error("destination.auto_disabled", sink=name, failing_s=failing_ms // 1000)
        paused = True
    if paused and disabled:
        await p.open("destination_paused", name, f"Destination {name} disabled after failing for "
                     f"{_span(failing_ms)}", f"Paused automatically; `wavix-events resume {name}` delivers "
                     "its backlog once it answers again.")
    elif paused:
        await p.open("destination_paused", name, f"Destination {name} paused",
                     f"Since {_iso(row.paused_since_ms)}; its deliveries wait parked until `resume`.")
    else:
        await p.resolve("destination_paused", name)
    await _dead_letters(p, name, row.dead_letters, seen)


async def _dead_letters(p: Pass, name: str, dead: int, seen: int | None) -> None:
    """Dead letters since the incident opened; it ends after an hour without another."""
    if seen is None or dead < seen:  # first sight (or a reset): the count so far is history, not news
        await p.redis.hset(f"{p.prefix}incidents:dead_seen", name, str(dead))  # type: ignore[misc]
        return
    current = await p.current("dead_letters", name)
    if dead > seen:
        count = (current.count if current else 0) + dead - seen
        await p.open("dead_letters", name, f"Destination {name}: {count} deliveries dead-lettered",
                     "Retries ran out; `wavix-events dlq list --destination " f"{name}` lists them.", count)
        await p.redis.hset(f"{p.prefix}incidents:dead_seen", name, str(dead))  # type: ignore[misc]
    elif current is not None and p.now_ms - current.last_ms >= HOUR_MS:
        await p.resolve("dead_letters", name)


async def check_pipeline(redis: Redis, alerting: Alerting, names: Sequence[str], *, prefix: str,
                         failing_after_s: float, disable_after_s: float,
                         disable_after: Mapping[str, float] | None = None, teller: ops.Teller | None = None) -> None:
    """One look at the pipeline: incidents opened, updated and resolved, their alerts queued, and their ops
    events with `teller`. `disable_after`: a destination's own auto-disable threshold (its routing file's
    `disable_after`), else `disable_after_s` (DESTINATION_DISABLE_AFTER)."""
    own = disable_after or {}
    seconds, micros = await redis.time()
    p = Pass(redis, prefix, int(seconds) * 1000 + int(micros) // 1000)
    rows = await health.read(redis, prefix, list(names))
    seen = await redis.hgetall(f"{prefix}incidents:dead_seen")  # type: ignore[misc]
    for row in rows:
        before = seen.get(row.name.encode())
        resumed = await redis.hget(health.keys(prefix, row.name).health, "resumed_ms")  # type: ignore[misc]
        await _destination(p, row, int(failing_after_s * 1000), int(own.get(row.name, disable_after_s) * 1000),
                           int(before) if before is not None else None, int(resumed or 0))
    if await redis.exists(f"{prefix}transcripts:not_provisioned"):
        await p.open("transcripts_not_provisioned", "", "Transcripts paused: Wavix says transcription is not "
                     "provisioned", "Wavix answered 403 for a transcript; calls are published without one. Enable "
                     "transcription (Flex Pro, recording on) for the account.")
    else:
        await p.resolve("transcripts_not_provisioned", "")
    refused = await redis.get(signal_key(prefix, "wavix_auth"))
    if refused is not None:
        await p.open("wavix_auth", "", "Wavix refuses the API key (401/403): calls cannot be fetched",
                     f"{refused.decode(errors='replace')}. Check WAVIX_API_KEY (or the account's key), then "
                     "`wavix-events dlq replay --all --reason ' -> 40'`.")
    else:
        await p.resolve("wavix_auth", "")
    missed = await redis.get(signal_key(prefix, "missed_webhooks"))
    if missed is not None and int(missed) > 0:
        await p.open("missed_webhooks", "", f"Reconciliation found {int(missed)} missed webhooks",
                     "Calls whose webhook never came were found in Wavix's CDR list and processed.", int(missed))
    elif missed is not None:
        await p.resolve("missed_webhooks", "")
    await announce(redis, alerting, prefix, p.now_ms, teller)
    async with redis.pipeline(transaction=False) as pipe:
        for key in (*keys(prefix), f"{prefix}incidents:dead_seen", ops.told_key(prefix)):
            pipe.expire(key, KEPT_S)
        await pipe.execute()


async def announce(redis: Redis, alerting: Alerting, prefix: str, now_ms: int,
                   teller: ops.Teller | None = None) -> None:
    """Queues every open incident's alert and every recently closed one's resolve (once each, by the outbox's
    marks), and with `teller` their ops events (once each, workers/alert/ops.py); forgets closed incidents after a
    day."""
    open_key, closed_key = keys(prefix)
    pending: list[PipelineIncident] = []  # their ops events, opened before resolved
    for raw in (await redis.hgetall(open_key)).values():  # type: ignore[misc]
        incident = _decode(raw)
        alert = alert_of(incident, alerting.console_url)
        await alerting.queue(redis, alert, alerting.channels_for(alert.reason))
        pending.append(data_of(incident))
    for field, raw in (await redis.hgetall(closed_key)).items():  # type: ignore[misc]
        incident = _decode(raw)
        if now_ms - incident.closed_ms > CLOSED_KEPT_MS:
            await redis.hdel(closed_key, field)  # type: ignore[misc]
            await ops.forget(redis, prefix, incident.id)
            continue
        alert = alert_of(incident, alerting.console_url, resolved=True)
        await alerting.queue(redis, alert, alerting.channels_for(alert.reason))
        pending.extend([data_of(msgspec.structs.replace(incident, closed_ms=0)), data_of(incident)])
    if teller is not None:
        await ops.tell(redis, prefix, teller, pending)


def data_of(incident: Incident) -> PipelineIncident:
    """The incident as its ops event's data: opened, or resolved once it has `closed_ms`."""
    return PipelineIncident(
        incident_id=incident.id, kind=incident.kind, destination=incident.subject or None,  # type: ignore[arg-type]
        opened_at=ops.at(incident.opened_ms), resolved_at=ops.at(incident.closed_ms) if incident.closed_ms else None,
        title=incident.title, detail=incident.detail, count=incident.count)


async def run_incidents(redis: Redis, alerting: Alerting, destinations: Callable[[], Sequence[Destination]], *,
                        prefix: str, failing_after_s: float, disable_after_s: float, queue: str, expiry_s: int,
                        stop: asyncio.Event) -> None:
    """The worker's background check, every few seconds (a quarter of the failing threshold, at most 15 s)."""
    interval = max(0.2, min(15.0, failing_after_s / 4))
    teller = ops.Teller(destinations, queue=queue, expiry_s=expiry_s)
    while not stop.is_set():
        try:
            current = destinations()
            own = {d.name: d.disables_after(disable_after_s) for d in current}
            await check_pipeline(redis, alerting, [d.name for d in current], prefix=prefix,
                                 failing_after_s=failing_after_s, disable_after_s=disable_after_s,
                                 disable_after=own, teller=teller)
        except (RedisError, OSError) as e:
            log.warning("incidents.unchecked", error=type(e).__name__)
        except Exception:  # a bug: say so, keep checking
            log.error("incidents.failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


