"""How the chaos run counts its webhook destination: as a Standard Webhooks consumer does (chaos/sinks.py).

The real webhook sink POSTs to the chaos run's endpoint. A repeat under the same `webhook-id` and body is a
redelivery: reported, dropped, the bar holds. A repeat under another `webhook-id` is taken in twice, and a
redelivery whose body differs from the first would lose data if dropped: each fails the bar.
"""

from __future__ import annotations

import time

import httpx
import msgspec

from chaos import report, sinks
from contract.events import encode_event
from tests.helpers.sinks import make_event
from workers.deliver.sinks import SinkOptions
from workers.deliver.sinks.base import idempotency_key
from workers.deliver.sinks.webhook import WebhookSink, sign, signing_key


def _verdict(hooks: sinks.HookCounter, expected: list[str]) -> list[str]:
    line = {**sinks.figures(hooks.per_event, expected), "bad_signatures": hooks.bad_signatures,
            "redelivered": hooks.redelivered, "redelivered_changed": hooks.redelivered_changed}
    return report.destination_failures({"webhook": line})


async def test_a_redelivery_is_reported_and_a_repeat_a_consumer_cannot_drop_fails_the_bar():
    hooks = await sinks.HookCounter().start()
    sink = WebhookSink(hooks.url, name="webhook", secret=sinks.SECRET, options=SinkOptions(timeout_s=5.0))
    first, second = make_event(), make_event()
    try:
        for event in (first, first, second):  # `first` twice, as a re-run after a kill sends it
            await sink.publish(event, idempotency_key=idempotency_key(event, "webhook"))
        assert hooks.redelivered == 1 and hooks.redelivered_changed == 0
        assert hooks.per_event == {first.id: 1, second.id: 1}
        assert _verdict(hooks, [first.id, second.id]) == []
        assert "1 / 0" in report.table({"webhook_repeats": f"{hooks.redelivered} / {hooks.bad_signatures}",
                                        "destinations": {}})

        await sink.publish(second, idempotency_key="another-id")  # a repeat no consumer can drop
        assert hooks.per_event[second.id] == 2
        assert _verdict(hooks, [first.id, second.id]) == ["webhook: event ids taken in more than once: 1"]
    finally:
        await sink.close()
        await hooks.stop()


async def test_a_redelivery_with_another_body_fails_the_bar():
    hooks = await sinks.HookCounter().start()
    event, other = make_event(), make_event(duration_s="43")
    msg_id, stamp = idempotency_key(event, "webhook"), int(time.time())
    try:
        async with httpx.AsyncClient() as client:
            for body in (encode_event(event), encode_event(msgspec.structs.replace(other, id=event.id))):
                headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
                           "webhook-signature": sign(signing_key(sinks.SECRET), msg_id, stamp, body)}
                assert (await client.post(hooks.url, content=body, headers=headers)).status_code == 204
        assert hooks.redelivered == 1 and hooks.redelivered_changed == 1
        assert hooks.per_event == {event.id: 1}
        assert _verdict(hooks, [event.id]) == [
            "webhook: redeliveries whose body differs from the first POST's: 1"]
    finally:
        await hooks.stop()
