"""The operator's control over deliveries: pause and resume, replay from the event log, the rate limit, dlq.

End to end with the real arq worker (tests/pipeline.py), a Redis Stream destination `events` and a signed
webhook destination `crm` (tests/helpers/sinks.py's receiver); the commands are the CLI's own functions.
"""

from __future__ import annotations

import io
import itertools
import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis
from rich.console import Console

from contract.events import decode_event
from contract.jobs import DELIVER
from tests.conftest import REDIS_URL
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import routed
from workers.deadletter import dead_letter
from workers.deliver import admin, health
from workers.deliver.jobs import Delivery, decode_delivery, encode_delivery
from workers.deliver.ledger import Ledger
from workers.operate import dlq


def webhook_ids(receiver: WebhookReceiver) -> list[str]:
    return [decode_event(r.body).id for r in receiver.received]


async def test_a_paused_destination_receives_nothing_then_everything_in_order_after_resume(tmp_path: Path) -> None:
    """While `crm` is paused its deliveries park (no request, no try spent) and `events` still gets every
    event at once; `resume` queues the parked ones and `crm` receives each once, in the order they were made."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver) as p:
        assert await admin.pause(p.settings, p.redis, "crm") == "crm: paused"
        calls, _ = await p.place_and_send(5)
        await p.run_worker()
        assert receiver.requests == [], "a paused destination must receive nothing"
        made = len(await p.events())  # completed, and transcription_unavailable for answered calls
        assert {e.subject for e in await p.events()} == {c.call_id for c in calls}, "`events` is not held up"
        (row,) = await health.read(p.redis, p.settings.key_prefix, ["crm"])
        assert row.paused and row.parked == made and row.backlog == made and row.failed == 0
        parked = [decode_delivery(m).event_id
                  for m in await p.redis.zrange(health.keys(p.settings.key_prefix, "crm").parked, 0, -1)]

        said = await admin.resume(p.settings, p.redis, "crm")
        assert said == f"crm: resumed; {made} parked deliveries queued, oldest first"
        await p.run_worker(max_jobs=1)
        assert webhook_ids(receiver) == parked
        (row,) = await health.read(p.redis, p.settings.key_prefix, ["crm"])
        assert not row.paused and row.parked == 0 and row.backlog == 0 and row.delivered == made
        assert row.failed == 0 and await p.dead_letters() == []


async def test_replay_since_a_time_delivers_the_same_ids_again(tmp_path: Path) -> None:
    """`replay --destination crm --since T` sends every event logged since T to crm again with the same event
    id and webhook-id (so the consumer can drop it), although the ledger says delivered; the other destination
    gets nothing more; a window after the events, or another type, replays nothing."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver) as p:
        since = int(time.time() * 1000) - 1000
        await p.place_and_send(3)
        await p.run_worker()
        made = len(await p.events())
        first = [(r.headers["webhook-id"], decode_event(r.body).id) for r in receiver.received]
        assert len(first) == made

        said = await admin.replay(p.settings, p.redis, "crm", since_ms=since, until_ms=None, types=())
        assert said == f"crm: {made} events queued for replay"
        await p.run_worker()
        again = [(r.headers["webhook-id"], decode_event(r.body).id) for r in receiver.received][len(first):]
        assert sorted(again) == sorted(first)
        assert len(await p.events()) == made, "only the named destination is replayed to"

        later = int(time.time() * 1000) + 1000
        nothing = await admin.replay(p.settings, p.redis, "crm", since_ms=later, until_ms=None, types=())
        other = await admin.replay(p.settings, p.redis, "crm", since_ms=since, until_ms=None,
                                   types=("wavix.call.transcribed",))
        assert nothing == other == "crm: 0 events queued for replay"
        with pytest.raises(admin.AdminError, match="no destination 'crn'"):
            await admin.replay(p.settings, p.redis, "crn", since_ms=since, until_ms=None, types=())


async def test_a_rate_limited_destination_gets_everything_without_spending_tries(tmp_path: Path) -> None:
    """`max_per_second: 4` on crm: events over the rate wait their turn; each arrives once, no try fails, nothing
    is dead-lettered, and `events` is not slowed."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver, crm="    max_per_second: 4\n") as p:
        await p.place_and_send(8)
        await p.run_worker()
        made = await p.events()
        assert Counter(webhook_ids(receiver)) == Counter(e.id for e in made) and len(made) >= 8
        assert len(receiver.requests) == len(made)
        (row,) = await health.read(p.redis, p.settings.key_prefix, ["crm"])
        assert row.failed == 0 and row.delivered == len(made) and await p.dead_letters() == []


async def test_the_rate_slot_is_shared_and_a_far_slot_is_not_taken() -> None:
    """GCRA across callers: at 1 per second the second claim waits ~1 s, the sixth ~5 s; the seventh (past the
    5 s a try may wait in place) is told to come back later and takes nothing, so the next caller is not pushed
    further out by it. A delivered or paused answer takes no slot either."""
    redis, prefix = Redis.from_url(REDIS_URL), f"test:rate:{uuid.uuid4().hex}:"
    book = Ledger(redis, prefix, delivered_ttl_s=60, lease_s=30)
    try:
        waits = [(await book.claim(f"e{i}", "crm", max_per_second=1)).wait_ms for i in range(6)]
        assert waits[0] == 0 and all(900 <= b - a <= 1000 for a, b in itertools.pairwise(waits)), waits
        seventh = await book.claim("e6", "crm", max_per_second=1)
        assert seventh.throttled_ms > 5000 and seventh.wait_ms == 0 and seventh.busy_ms == 0
        again = await book.claim("e7", "crm", max_per_second=1)
        assert again.throttled_ms <= seventh.throttled_ms, "a refused claim must not push the slot out"
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        await redis.delete(*keys)
        await redis.aclose()


async def test_destinations_table_shows_health(tmp_path: Path) -> None:
    """`wavix-events destinations` prints one row per destination with its state, failures and backlog."""
    receiver = WebhookReceiver(status=503)
    async with routed(tmp_path, receiver, crm="    retry: {schedule: [1h]}\n") as p:
        await p.place_and_send(2)
        await p.run_worker(max_burst_jobs=2)  # the first tries only; the retries are an hour out
        out = io.StringIO()
        await admin.show(p.settings, p.redis, Console(file=out, width=240))
        lines = {line.split("│")[1].strip(): line for line in out.getvalue().splitlines() if line.count("│") > 5}
        assert "ok" in lines["events"] and "failing" in lines["crm"]
        assert "│ 2 " in lines["crm"] and "1h" in lines["crm"]
        assert "crm: last error: crm: POST -> 503" in out.getvalue()
        await p.redis.delete(p.settings.queue_name)


async def test_destinations_fit_80_columns_and_json_has_every_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At 80 columns (a terminal's default) `destinations` shows each destination as a block whose values are
    whole (no column squeezed to `…` or broken across lines); `destinations --json` prints every field."""
    receiver = WebhookReceiver(status=503)
    routing = "    retry: {schedule: [1h]}\n    max_per_second: 5\n    disable_after: 36h\n"
    async with routed(tmp_path, receiver, crm=routing) as p:
        await p.place_and_send(2)
        await p.run_worker(max_burst_jobs=2)  # the first tries only; the retries are an hour out
        out = io.StringIO()
        await admin.show(p.settings, p.redis, Console(file=out, width=80))
        text = out.getvalue()
        assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text, text
        crm = text[text.index("\ncrm ") + 1:]
        assert crm.startswith("crm") and "failing" in crm.splitlines()[0] and "2 failures" in crm.splitlines()[0]
        assert "backlog 2" in crm and "retry 1h" in crm and "max 5/s" in crm and "disable after 36h" in crm
        assert "last error: crm: POST -> 503" in crm

        assert await admin.main(p.settings, "destinations", as_json=True) == 0
        rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
        assert rows["events"]["state"] == "ok" and rows["crm"]["state"] == "failing"
        assert (rows["crm"]["failures"], rows["crm"]["backlog"], rows["crm"]["max_per_second"]) == (2, 2, 5.0)
        assert rows["crm"]["retry_schedule"] == "1h" and rows["crm"]["last_error"] == "crm: POST -> 503"
        assert rows["crm"]["failing_since"].endswith("Z") and rows["events"]["failing_since"] is None
        assert (rows["crm"]["disable_after_s"], rows["events"]["disable_after_s"]) == (36 * 3600, 5 * 86400)
        await p.redis.delete(p.settings.queue_name)


async def test_dlq_list_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`dlq list --json` prints the selected letters (each field, the delivery's destination) and the total."""
    async with routed(tmp_path, WebhookReceiver()) as p:
        stream = p.settings.dead_letter_stream
        for n in range(3):
            delivery = Delivery(destination="crm", call_id=f"c{n}", event_id=f"e{n}", event=b"{}", first_at_ms=1)
            await dead_letter(p.redis, stream, kind=DELIVER, reason=f"crm: HTTP 50{n}", attempts=8,
                              payload=encode_delivery(delivery), call_id=f"c{n}")
        assert await dlq.run(p.settings, "list", [], replay_all=False, limit=2, as_json=True) == 0
        listing = json.loads(capsys.readouterr().out)
        assert (listing["stream"], listing["total"]) == (stream, 3)
        assert [(d["call_id"], d["kind"], d["destination"], d["attempts"]) for d in listing["letters"]] == [
            ("c0", DELIVER, "crm", 8), ("c1", DELIVER, "crm", 8)]
        assert listing["letters"][0]["reason"] == "crm: HTTP 500" and listing["letters"][0]["failed_at"].endswith("Z")


async def test_dlq_filters_show_and_purge_after_confirmation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`dlq list --destination crm` lists only crm's letters; `--reason` narrows by text; `dlq show` prints the
    delivery's event; `dlq purge` deletes nothing on "n" and only the selected letters on "y"."""
    async with routed(tmp_path, WebhookReceiver()) as p:
        stream = p.settings.dead_letter_stream
        for destination, reason in (("crm", "crm: HTTP 503"), ("crm", "crm: HTTP 410"), ("events", "WRONGTYPE")):
            delivery = Delivery(destination=destination, call_id="c1", event_id=f"id-{destination}-{reason[-3:]}",
                                event=b'{"specversion": "1.0"}', first_at_ms=1)
            await dead_letter(p.redis, stream, kind=DELIVER, reason=reason, attempts=8,
                              payload=encode_delivery(delivery), call_id="c1")
        crm = dlq.Filters(destination="crm")
        assert len(await dlq.select(p.arq(), stream, crm, 100)) == 2
        narrowed = await dlq.select(p.arq(), stream, dlq.Filters(reason="410"), 100)
        assert [d.reason for d in narrowed] == ["crm: HTTP 410"]
        first = (await dlq.select(p.arq(), stream, crm, 1))[0]
        assert await dlq.run(p.settings, "show", [first.id], replay_all=False, limit=1) == 0
        assert '"specversion": "1.0"' in capsys.readouterr().out

        monkeypatch.setattr("builtins.input", lambda prompt: "n")
        await dlq.run(p.settings, "purge", [], replay_all=False, limit=None, filters=crm)
        assert await p.redis.xlen(stream) == 3
        monkeypatch.setattr("builtins.input", lambda prompt: "y")
        await dlq.run(p.settings, "purge", [], replay_all=False, limit=None, filters=crm)
        assert [d.reason for d in await dlq.select(p.arq(), stream, dlq.Filters(), 100)] == ["WRONGTYPE"]
