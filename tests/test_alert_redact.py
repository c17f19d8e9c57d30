"""ALERT_REDACT: Slack alerts take the same redaction as a destination's `redact:`, through the real worker and the
Slack stand-in: what Slack receives (and what waits in the outbox) carries no number in clear and no recording link."""

from __future__ import annotations

import json

from sandbox.config import SandboxConfig
from tests.pipeline import pipeline
from workers.alert.rules import pending_keys


async def test_alerts_follow_alert_redact() -> None:
    """With ALERT_REDACT=numbers=mask,recording_url=drop every alert Slack receives shows the numbers masked (country
    code and last two digits) and no recording button; the outbox in Redis held them masked too."""
    config = SandboxConfig(seed=3, transcript_share=0.0, machine_share=0.5)
    async with pipeline(config, ALERT_REDACT="numbers=mask,recording_url=drop") as p:
        calls, _ = await p.place_and_send(12)
        await p.run_worker()
        outbox = await p.redis.hvals(pending_keys(p.settings.key_prefix)[1])
        await p.flush_alerts()
        messages = [json.dumps(r.message) for r in p.slack.accepted()]
        assert messages, "the seed should give alerted calls"
        numbers = {n.lstrip("+")[-9:] for c in calls for n in (c.from_, c.to)}
        for text in [*messages, *(v.decode(errors="replace") for v in outbox)]:
            assert not [n for n in numbers if n in text]
        assert any("*" in m for m in messages)
        assert not any("Play recording" in m or "recordings" in m for m in messages)
