"""`make demo` shows the other alert channels: a Teams card, a PagerDuty event and an e-mail in their stand-ins."""

from __future__ import annotations

import os
import re

from tests.conftest import REDIS_URL
from tests.test_demo import SHORT, DemoRun


def test_the_demo_shows_a_teams_card_a_pagerduty_event_and_an_email():
    """The short demo routes failed calls to Teams, failed and machine-answered ones to e-mail and the pipeline's
    incidents to PagerDuty (its reconciliation finds the webhooks the sandbox never sent): each stand-in received
    at least one, and the demo prints one of each."""
    run = DemoRun(["--calls", "60", *SHORT], {**os.environ, "REDIS_URL": REDIS_URL})
    assert run.status == 0, run
    counts = re.search(r"Teams (\d+) card\(s\) · PagerDuty (\d+) event\(s\), \d+ open · e-mail (\d+) message",
                       run.stdout)
    assert counts and all(int(n) >= 1 for n in counts.groups()), run
    assert "Teams card:" in run.stdout and "PagerDuty trigger: Incident: Reconciliation found" in run.stdout, run
    assert re.search(r"E-mail to calls-lead@example.com: \[wavix alert\] ", run.stdout), run
