"""One delivery in flight per event and destination, and none where the event already arrived.

End to end with the real arq worker (tests/pipeline.py) and a signed-webhook receiver on loopback.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.helpers.sinks import WebhookReceiver
from tests.pipeline import routed


def posts_per_event(receiver: WebhookReceiver) -> Counter[str]:
    return Counter(r.headers["webhook-id"] for r in receiver.requests)


async def test_a_slow_destination_gets_each_event_once(tmp_path: Path) -> None:
    """An endpoint answering after 3 s (beyond the 2 s inline wait, within the sink's own timeout) gets one
    POST per event: the first attempt is not abandoned while it may still land, and no second one is sent."""
    receiver = WebhookReceiver(delay_s=3.0)
    async with routed(tmp_path, receiver, seed=4) as p:
        calls, _ = await p.place_and_send(2)
        await p.run_worker()
        posts = posts_per_event(receiver)
        assert set(posts.values()) == {1}, posts
        assert sorted(posts) == sorted(f"{e.id}:crm" for e in await p.events())
        assert {e.subject for e in await p.events()} == {c.call_id for c in calls}
        assert len(receiver.received) == len(posts)
        assert await p.dead_letters() == []


async def test_work_done_again_goes_only_where_the_event_did_not_arrive(tmp_path: Path) -> None:
    """process_call run again for calls already delivered (a replayed dead letter, a crashed job) sends
    nothing to the destinations that already have the event."""
    receiver = WebhookReceiver()
    async with routed(tmp_path, receiver, seed=4) as p:
        calls, _ = await p.place_and_send(3)
        await p.run_worker()
        delivered = posts_per_event(receiver)
        assert sorted(delivered) == sorted(f"{e.id}:crm" for e in await p.events()) and len(delivered) >= len(calls)
        for call in calls:
            await p.rerun_call(call.call_id)
        await p.run_worker()
        assert posts_per_event(receiver) == delivered, "a destination that had the event got it again"
        assert len(await p.events()) == len(delivered)
