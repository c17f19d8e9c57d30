"""Pipeline incidents: one alert when an incident opens, one when it resolves, never a flood; auto-disable.

Real Redis and the PagerDuty stand-in (its alerts show trigger and resolve under one dedup key); the last test
runs the real worker against a destination that answers 503, then recovers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from contract.alerting import AlertsFile, parse_routes
from sandbox import pagerduty as pd
from sandbox.config import SandboxConfig
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import pipeline, routed
from workers.alert.alerting import Alerting, slack_only
from workers.alert.incidents import check_pipeline, keys, missed_webhooks, note_dead_letter
from workers.alert.outbox import dispatch_pending
from workers.alert.pagerduty import pagerduty_channel
from workers.alert.rules import DeliveryPolicy
from workers.deliver import control, health

DAY_MS = 86_400_000


@dataclass
class World:
    redis: Redis
    prefix: str
    alerting: Alerting
    standin: pd.PagerDutyStandIn

    async def check(self, *names: str, failing_after_s: float = 600, disable_after_s: float = 5 * 86_400) -> None:
        await check_pipeline(self.redis, self.alerting, names or ("crm",), prefix=self.prefix,
                             failing_after_s=failing_after_s, disable_after_s=disable_after_s)
        await dispatch_pending(self.redis, self.alerting.channels["pagerduty"], digest_threshold=5,
                               dead_letter_stream=self.prefix + "dead", policy=self.alerting.policy)

    async def failing_since(self, name: str, ago_ms: int) -> None:
        now = await self.now_ms()
        await self.redis.hset(health.keys(self.prefix, name).health,  # type: ignore[misc]
                              mapping={"since_ms": now - ago_ms, "streak": 7, "error": "http_503"})

    async def now_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def actions(self, kind: str) -> list[str]:
        return [e["event_action"] for key, a in self.standin.alerts.items() if key.startswith(kind) for e in a.events]


@pytest.fixture
async def world(redis: Redis) -> AsyncIterator[World]:
    prefix = f"test:incidents:{uuid.uuid4().hex}:"
    standin = pd.PagerDutyStandIn()
    async with pd.serve(standin) as base, httpx.AsyncClient() as http:
        channel = pagerduty_channel(http, pd.ROUTING_KEY, url=base + pd.PATH, pace_s=0.01)
        alerting = Alerting(config=AlertsFile(rules=parse_routes(["pipeline=pagerduty"])),
                            channels={"pagerduty": channel}, policy=DeliveryPolicy(prefix=prefix))
        yield World(redis, prefix, alerting, standin)
    found = [k async for k in redis.scan_iter(match=prefix + "*")]
    if found:
        await redis.delete(*found)


async def test_a_destination_failing_past_the_threshold_opens_one_incident_and_recovery_resolves_it(
    world: World,
) -> None:
    """Failing 5 min (threshold 10): nothing. Failing 11 min: one trigger, however many checks follow. A
    success (the health's `since` cleared): one resolve, under the same dedup key."""
    await world.failing_since("crm", 5 * 60_000)
    await world.check()
    assert world.standin.alerts == {}
    await world.failing_since("crm", 11 * 60_000)
    for _ in range(3):
        await world.check()
    [alert] = world.standin.alerts.values()
    assert alert.open and [e["event_action"] for e in alert.events] == ["trigger"]
    assert "Destination crm failing for 11 min" in alert.events[0]["payload"]["summary"]
    await world.redis.hdel(health.keys(world.prefix, "crm").health, "since_ms")  # type: ignore[misc]
    for _ in range(2):
        await world.check()
    assert [e["event_action"] for e in alert.events] == ["trigger", "resolve"] and not world.standin.open_alerts()
    assert await world.redis.hlen(keys(world.prefix)[0]) == 0  # type: ignore[misc]


async def test_a_destination_failing_for_days_is_disabled_and_resume_brings_it_back(world: World) -> None:
    """Failing longer than DESTINATION_DISABLE_AFTER: the destination is paused and one incident says it was
    disabled; after `resume` it is not paused again at once (the clock starts again), and the pause's incident
    resolves."""
    await world.failing_since("crm", 6 * DAY_MS)
    await world.check()
    [row] = await health.read(world.redis, world.prefix, ["crm"])
    assert row.paused
    assert world.actions("destination_paused") == ["trigger"]
    paused = next(a for k, a in world.standin.alerts.items() if k.startswith("destination_paused"))
    assert "disabled after failing for 144 h" in paused.events[0]["payload"]["summary"]
    await control.resume(world.redis, world.prefix, "crm", queue=world.prefix + "queue", expiry_s=60)
    await world.check()
    [row] = await health.read(world.redis, world.prefix, ["crm"])
    assert not row.paused and world.actions("destination_paused") == ["trigger", "resolve"]
    assert world.actions("destination_failing") == ["trigger"]  # still failing: that incident stays open


async def test_dead_letters_are_counted_in_one_incident_that_ends_after_a_quiet_hour(world: World) -> None:
    """Dead letters before the first look are history; new ones open one incident with their count, more
    only update it (no new message); an hour without another resolves it."""
    k = health.keys(world.prefix, "crm").health
    await world.redis.hset(k, "dead", 40)  # type: ignore[misc]
    await world.check()
    assert world.standin.alerts == {}
    await world.redis.hincrby(k, "dead", 3)  # type: ignore[misc]
    await world.check()
    await world.redis.hincrby(k, "dead", 2)  # type: ignore[misc]
    await world.check()
    assert world.actions("dead_letters") == ["trigger"]
    assert "3 deliveries dead-lettered" in next(iter(world.standin.alerts.values())).events[0]["payload"]["summary"]
    open_key = keys(world.prefix)[0]
    [(field, raw)] = (await world.redis.hgetall(open_key)).items()  # type: ignore[misc]
    record = msgspec.msgpack.decode(raw)
    assert record["count"] == 5
    record["last_ms"] -= 3_600_001  # an hour has passed without another
    await world.redis.hset(open_key, field, msgspec.msgpack.encode(record))  # type: ignore[misc]
    await world.check()
    assert world.actions("dead_letters") == ["trigger", "resolve"]


async def test_transcripts_not_provisioned_and_missed_webhooks_open_and_resolve(world: World) -> None:
    """Transcription paused (Wavix's 403) and a reconciliation pass that found missed webhooks are incidents
    while they last: the pause ends, a pass finds none, and each resolves."""
    await world.redis.set(f"{world.prefix}transcripts:not_provisioned", "1", ex=60)
    await missed_webhooks(world.redis, world.prefix, 4)
    await world.check()
    assert sorted(k.split(":")[0] for k in world.standin.alerts) == ["missed_webhooks", "transcripts_not_provisioned"]
    missed = next(a for k, a in world.standin.alerts.items() if k.startswith("missed"))
    assert "found 4 missed webhooks" in missed.events[0]["payload"]["summary"]
    await world.redis.delete(f"{world.prefix}transcripts:not_provisioned")
    await missed_webhooks(world.redis, world.prefix, 0)
    await world.check()
    assert not world.standin.open_alerts()


async def test_the_worker_opens_an_incident_disables_a_failing_destination_and_its_recovery_resolves_both(
    tmp_path: Path, redis: Redis,
) -> None:
    """Real worker: crm answers 503; past PIPELINE_FAILING_AFTER (1 s) an incident opens in PagerDuty, past
    DESTINATION_DISABLE_AFTER (3 s) crm is paused with its own incident, and its deliveries wait parked. crm
    recovers and is resumed: the backlog is delivered, and both incidents resolve, one message each."""
    standin = pd.PagerDutyStandIn()
    receiver = WebhookReceiver(status=503)
    schedule = "    retry: {schedule: [1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]}\n"
    async with pd.serve(standin) as base, routed(
            tmp_path, receiver, schedule, PAGERDUTY_ROUTING_KEY=pd.ROUTING_KEY, PAGERDUTY_URL=base + pd.PATH,
            ALERT_RULES="pipeline=pagerduty", PIPELINE_FAILING_AFTER="1", DESTINATION_DISABLE_AFTER="3") as p:
        await p.place_and_send(3)
        await p.run_worker()
        prefix = p.settings.key_prefix
        [row] = await health.read(p.redis, prefix, ["crm"])
        assert row.paused and row.parked > 0
        async with httpx.AsyncClient() as http:
            alerting = Alerting(config=p.settings.alerting(), policy=DeliveryPolicy(prefix=prefix), channels={
                "pagerduty": pagerduty_channel(http, pd.ROUTING_KEY, url=base + pd.PATH, pace_s=0.01)})
            world = World(p.redis, prefix, alerting, standin)
            await world.check(failing_after_s=1, disable_after_s=3)
            assert world.actions("destination_failing") == ["trigger"]
            assert world.actions("destination_paused") == ["trigger"]
            receiver.status = 204
            await control.resume(p.redis, prefix, "crm", queue=p.settings.queue_name, expiry_s=60)
            await p.run_worker()
            await world.check(failing_after_s=1, disable_after_s=3)
        assert len({r.body for r in receiver.received}) >= 3  # the backlog, delivered
        assert world.actions("destination_failing") == ["trigger", "resolve"]
        assert world.actions("destination_paused") == ["trigger", "resolve"] and not standin.open_alerts()


async def test_wavix_refusing_the_key_is_an_incident_until_it_stops(world: World) -> None:
    """A job dead-lettered on Wavix's 401 opens a `wavix_auth` incident (a delivery's 401 does not: that is its
    destination's); with no refusal for a while (the signal's life) it resolves."""
    await note_dead_letter(world.redis, world.prefix, "deliver", "POST https://crm -> 401: nope")
    await world.check()
    assert world.standin.alerts == {}
    await note_dead_letter(world.redis, world.prefix, "process_call", "GET /v1/cdr/{uuid} -> 401: Unauthorized")
    await world.check()
    assert world.actions("wavix_auth") == ["trigger"]
    await world.redis.delete(f"{world.prefix}signal:wavix_auth")  # its 15 minutes are over
    await world.check()
    assert world.actions("wavix_auth") == ["trigger", "resolve"]


async def test_the_worker_with_a_revoked_key_opens_a_wavix_auth_incident(redis: Redis) -> None:
    """Real worker, a key Wavix refuses: its calls are dead-lettered on 401, and the check (the worker's, or
    this one after it) opens one incident."""
    async with pipeline(SandboxConfig(seed=2, transcript_share=0.0), WAVIX_API_KEY="revoked-key-0000") as p:
        await p.place_and_send(3)
        await p.run_worker()
        letters = await p.dead_letters()
        assert letters and all(b" -> 401: " in fields[b"reason"] for fields in letters)
        prefix = p.settings.key_prefix
        assert await redis.exists(f"{prefix}signal:wavix_auth")
        await check_pipeline(redis, slack_only(), [], prefix=prefix, failing_after_s=600, disable_after_s=0)
        [incident] = (await redis.hgetall(keys(prefix)[0])).values()  # type: ignore[misc]
        assert msgspec.msgpack.decode(incident)["kind"] == "wavix_auth"
