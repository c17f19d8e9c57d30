"""Card: what an alert says, before any service's format (pure): a title, a severity, facts, text, a quote, links.

    Alert ──> card_for ──> Card ──> teams.py (Adaptive Card), email.py (subject, text, HTML), pagerduty.py
    [Alert] ─> digest_card ─> Card     (summary and custom_details), and Slack for the kinds Block Kit had none for

One reading of an alert for every channel: the same title, facts and severity in Teams, an e-mail and PagerDuty,
so a change of wording is made once. Values are plain text here; each channel escapes them for its own markup
(Adaptive Card markdown, HTML) and clips them to its own limits. Slack's call alerts keep their own Block Kit
(workers/alert/rules.py), pinned by its tests since before the other channels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import msgspec

from workers.alert.rules import Alert

Severity = Literal["critical", "error", "warning", "info"]  # PagerDuty's four; the others colour by it

_CALL_TITLES = {
    "failed": "Call failed",
    "machine": "Answered by a machine",
    "busy": "Line busy",
    "no_answer": "No answer",
}
_SEVERITY: dict[str, Severity] = {"failed": "warning", "machine": "info", "busy": "info", "no_answer": "info",
                                  "keyword": "warning", "pipeline": "error"}
_TALLY = {"failed": "failed", "machine": "answered by a machine", "busy": "busy", "no_answer": "not answered"}
DIGEST_LINES = 40  # calls named in a digest; the rest are counted


class Card(msgspec.Struct, frozen=True, kw_only=True):
    """One message's content, in plain text; `facts` are (label, value), `links` (label, URL)."""

    title: str
    severity: Severity
    facts: tuple[tuple[str, str], ...] = ()
    text: str = ""  # a summary, an incident's particulars
    quote: str = ""  # what was said
    lines: tuple[str, ...] = ()  # a digest's one line per alert
    links: tuple[tuple[str, str], ...] = ()
    footer: str = ""


def _who(alert: Alert) -> str:
    return f"{alert.from_number or '?'} → {alert.to_number or '?'}"


def title_of(alert: Alert) -> str:
    """The one line that names the alert: the call's outcome, the rule that heard a word, the incident."""
    if alert.incident:
        state = "Resolved" if alert.resolved else "Incident"
        return f"{state}: {alert.title or alert.reason.partition(':')[2] or 'pipeline'}"
    if alert.family == "keyword":
        return f"Said on a call ({alert.reason.partition(':')[2]}): {_who(alert)}"
    return f"{_CALL_TITLES.get(alert.reason, alert.reason)}: {_who(alert)}"


def severity_of(alert: Alert) -> Severity:
    return "info" if alert.resolved else _SEVERITY.get(alert.family, "warning")


def _call_facts(alert: Alert) -> tuple[tuple[str, str], ...]:
    pairs = [("Call", alert.call_id), ("When", alert.occurred_at), ("Direction", alert.direction),
             ("From", alert.from_number), ("To", alert.to_number), ("Disposition", alert.disposition),
             ("Answered by", alert.answered_by or ""), ("Duration", f"{alert.duration_s} s"),
             ("Cost", f"${alert.cost}"), ("Destination", alert.destination), ("Account", alert.account)]
    if alert.speaker:
        pairs.append(("Said by", alert.speaker))
    return tuple((label, value) for label, value in pairs if value)


def _links(alert: Alert) -> tuple[tuple[str, str], ...]:
    links = [("Open the call", alert.link), ("Play recording", alert.recording_url)]
    return tuple((label, url) for label, url in links if url and url.startswith(("https://", "http://")))


def card_for(alert: Alert) -> Card:
    """One alert's card."""
    if alert.incident:
        facts = (("Incident", alert.call_id), ("Kind", alert.reason.partition(":")[2]),
                 ("Since" if not alert.resolved else "Resolved at", alert.occurred_at))
        return Card(title=title_of(alert), severity=severity_of(alert), facts=facts, text=alert.detail or "",
                    links=_links(alert), footer=f"{alert.reason} · {alert.call_id}")
    return Card(title=title_of(alert), severity=severity_of(alert), facts=_call_facts(alert),
                text=alert.summary or "", quote=alert.quote or "", links=_links(alert),
                footer=f"reason {alert.reason} · call {alert.call_id} · {alert.occurred_at}")


def digest_line(alert: Alert) -> str:
    return (f"{alert.reason}: {_who(alert)} · {alert.disposition or '?'} · {alert.duration_s} s · ${alert.cost}"
            f" · {alert.call_id}")


def tally(alerts: Sequence[Alert]) -> str:
    counts = Counter(alert.reason for alert in alerts)
    return " · ".join(f"{n} {_TALLY.get(reason, reason)}" for reason, n in sorted(counts.items()))


def digest_card(alerts: Sequence[Alert]) -> Card:
    """Many alerts in one card: the count, a line per alert (at most DIGEST_LINES), then how many more."""
    count = len(alerts)
    lines = [digest_line(alert) for alert in alerts[:DIGEST_LINES]]
    if count > len(lines):
        lines.append(f"… and {count - len(lines)} more")
    worst = min((severity_of(a) for a in alerts), key=("critical", "error", "warning", "info").index)
    noun = "call alert" if count == 1 else "call alerts"
    return Card(title=f"{count} {noun}", severity=worst, lines=tuple(lines), footer=tally(alerts))
