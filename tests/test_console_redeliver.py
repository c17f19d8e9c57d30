"""Redeliver what failed since a time, per destination (issue #23), in Chromium against the real worker.

"Replay since" resends everything logged, what the destination already has included; "Redeliver what failed"
queues only the events the delivery ledger has no delivered mark for at that destination, and clears their
dead letters there. crm is tests/helpers/sinks.py's verifying webhook receiver (tests/pipeline.py `routed`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from contract.events import decode_event
from tests.helpers.console import console_page, shot
from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import routed

NAMES = ("events", "crm")


def _crm_ids(receiver: WebhookReceiver, start: int = 0) -> list[str]:
    return [decode_event(r.body).id for r in receiver.received[start:]]


async def test_redeliver_sends_only_what_the_destination_has_not_got(tmp_path: Path) -> None:
    """crm gets the first calls' events, then answers 503 until its deliveries are dead letters, then recovers.
    "Redeliver what failed" since before all of it queues exactly the events crm lacks (the page says how many of
    how many), the worker sends those once each and nothing crm had, `events` gets nothing more, and crm's dead
    letters are gone."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver, crm="    retry: {schedule: [50ms]}\n") as p:
        since = datetime.fromtimestamp(time.time() - 2, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await p.place_and_send(2)
        await p.run_worker()
        had = set(_crm_ids(receiver))
        receiver.status = 503
        await p.place_and_send(3)
        await p.run_worker()
        receiver.status = 204
        logged = {e.id for e in await p.events()}
        lacking = logged - had
        assert had and lacking and len(_crm_ids(receiver)) == len(had)
        assert len(await p.dead_letters()) == len(lacking)
        async with console_page(p, "/destinations", names=NAMES) as (page, _):
            form = page.locator("#destination-crm form.redeliver")
            await form.locator("input.since").fill(since)
            await form.locator("button.redeliver").click()
            said = await page.inner_text("#done")
            assert said.startswith(f"crm: {len(lacking)} of {len(logged)} events since then not delivered there; "
                                   f"{len(lacking)} queued"), said
            assert f"{len(lacking)} dead letter(s) cleared" in said
            await shot(page, "destinations-redelivered")
        sent_before, events_before = len(receiver.received), len(await p.events())
        await p.run_worker()
        assert sorted(_crm_ids(receiver, sent_before)) == sorted(lacking), "only what crm lacked, once each"
        assert len(await p.events()) == events_before, "`events` had everything: it gets nothing more"
        assert await p.dead_letters() == []
