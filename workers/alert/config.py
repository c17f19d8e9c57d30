"""Config: the alert outbox's `DeliveryPolicy` from the settings, built once when a worker starts.

SLACK_RETRY_SCHEDULE is read with workers/retry.py's own `parse_duration` and `Schedule`, the ones a
destination's `retry: schedule` uses: one parser, one rule for "when is the next try". A sent alert's
thread is remembered for TRANSCRIPT_WAIT plus the schedule's span: a transcript may come as late as
TRANSCRIPT_WAIT after the call, and its reply may then need every retry the schedule allows.
"""

from __future__ import annotations

from contract import logs
from contract.errors import SettingsError
from contract.settings import Settings
from workers.alert.rules import SLACK_SCHEDULE, DeliveryPolicy
from workers.alert.slack import Sender, can_thread
from workers.retry import Schedule, parse_duration

log = logs.get("workers.alert")


def slack_schedule(waits: tuple[str, ...]) -> Schedule:
    """The Slack retry schedule from SLACK_RETRY_SCHEDULE's durations; SettingsError names the variable."""
    try:
        return Schedule(delays=tuple(parse_duration(wait) for wait in waits), jitter=SLACK_SCHEDULE.jitter)
    except ValueError as e:
        raise SettingsError("SLACK_RETRY_SCHEDULE", f"{e} (e.g. 5s,30s,2m,10m,30m,2h)") from e


def policy_from_settings(settings: Settings, sender: Sender | None) -> DeliveryPolicy:
    """The outbox's policy; says once, in the log, when alerts go nowhere (no Slack: they are dropped, not kept
    for a later Slack, since an alert hours late is no alert) and when transcripts cannot reach the alerts
    (an incoming webhook)."""
    schedule = slack_schedule(settings.slack_retry_schedule)
    if sender is None and settings.alert_rules and settings.alert_channels() == ("slack",):  # no channel at all
        log.warning("alert.off", rules=",".join(settings.alert_rules),
                    why="no Slack is set (SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL): the alerts of "
                        "this worker's calls are dropped, not kept for later")
    if sender is not None and not can_thread(sender):
        log.info("alert.transcript_replies_off", why="an incoming webhook answers no ts, so its alerts cannot be "
                 "found again; set SLACK_BOT_TOKEN (chat:write) and SLACK_CHANNEL for transcript replies")
    return DeliveryPolicy(prefix=settings.key_prefix, retry=schedule,
                          thread_ttl_s=int(settings.transcript_wait + schedule.span),
                          dead_letter_retention_s=settings.dead_letter_retention)
