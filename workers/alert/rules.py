"""Alerts: what a Slack alert says about a call, and how it looks in Block Kit (pure, no I/O).

One `Alert` per call and reason. `render_alert` makes the message for one call; `render_digest` makes
ONE message for many, so a burst of failures never floods the channel. Both stay inside Slack's Block
Kit limits whatever the input (50 blocks, header 150, section text 3,000, 10 fields of 2,000, a
top-level `text` fallback, total text well under 12,000): every value is escaped for mrkdwn (so a
caller-controlled string cannot ping `<!channel>`) and then clipped.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal, get_args

import msgspec

from workers.retry import Decision, Schedule, Transient

# The brief's two reasons, plus the two more rules `workers.enrich.ALERT_RULES` can be configured to fire.
Reason = Literal["failed", "machine", "busy", "no_answer"]
CALL_REASONS: frozenset[str] = frozenset(get_args(Reason))
Message = dict[str, Any]  # Slack's JSON body: {"text": ..., "blocks": [...]}

MAX_BLOCKS = 50
HEADER_MAX = 150
SECTION_MAX = 3000
FIELDS_MAX = 10
FIELD_MAX = 2000
BUTTON_URL_MAX = 3000
DIGEST_LINES = 40  # calls listed by name in a digest; the rest are counted
TEXT_BUDGET = 9000  # total block text we allow ourselves, well under Slack's 12,000
_VALUE_MAX = 300  # one field value: numbers and ids are short, so a long one is clipped early
_LINE_MAX = 200  # one digest line

_TITLE: dict[str, tuple[str, str]] = {
    "failed": (":x:", "Call failed"),
    "machine": (":robot_face:", "Answered by a machine"),
    "busy": (":no_entry:", "Line busy"),
    "no_answer": (":mute:", "No answer"),
}
_TALLY = {"failed": "failed", "machine": "answered by a machine", "busy": "busy", "no_answer": "not answered"}


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """The essentials of one call (or pipeline incident) worth a human's attention; secrets are already stripped.

    `reason` is a call's `Reason`, `keyword:<rule>` for what was said (workers/alert/keywords.py), or
    `pipeline:<kind>` for an incident of the pipeline itself, whose `call_id` is then the incident's id and whose
    resolution is a second alert with `resolved` set (workers/alert/incidents.py)."""

    call_id: str
    reason: str
    occurred_at: str  # ISO 8601
    from_number: str = ""
    to_number: str = ""
    direction: str = ""
    disposition: str = ""
    answered_by: str | None = None
    duration_s: str = "0"
    cost: str = "0"  # decimal string, USD
    destination: str = ""
    recording_url: str | None = None
    summary: str | None = None
    # --- issue #27: routes per account, what was said, the pipeline's own incidents ---
    account: str = ""  # the call's Wavix account (routes per account: workers/alert/routes.py)
    link: str | None = None  # the console's page of the call (CONSOLE_URL)
    quote: str | None = None  # what was said: the turn, a few words either side of the match
    speaker: str | None = None  # who said it: caller or callee
    title: str | None = None  # an incident's one line
    detail: str | None = None  # an incident's particulars
    resolved: bool = False  # an incident's end

    @property
    def key(self) -> str:
        """Identity of the alert: at most one is ever sent per call and reason (an incident: per opening, and
        per resolution)."""
        return f"{self.call_id}:{self.reason}" + (":resolved" if self.resolved else "")

    @property
    def family(self) -> str:
        """What routes name: the reason, or its kind before the colon (`keyword`, `pipeline`)."""
        return self.reason.split(":", 1)[0]

    @property
    def incident(self) -> bool:
        """A pipeline incident's alert: it always goes in a message of its own, never in a digest."""
        return self.family == "pipeline"


_encoder = msgspec.msgpack.Encoder()
_decode_alert = msgspec.msgpack.Decoder(Alert).decode


def encode_alert(alert: Alert) -> bytes:
    return _encoder.encode(alert)


def decode_alert(data: bytes) -> Alert:
    return _decode_alert(data)


# ── Delivery records: kept pure here so the Redis side in workers/alert/slack.py stays short ──

DAY = 86_400


# Slack's retry schedule (SLACK_RETRY_SCHEDULE): 7 tries over about 2 h 43 min. Shorter than the deliveries'
# ~28 h: Slack's own incidents are mostly fixed within an hour or two, and an alert about a failed call that
# arrives the next morning tells nobody anything they can still act on; the dead letter keeps it for replay.
# No jitter: alerts that failed together come back together and go out as one digest, not as a trickle.
SLACK_SCHEDULE = Schedule(delays=(5.0, 30.0, 120.0, 600.0, 1800.0, 7200.0), jitter=0.0)


class DeliveryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Pacing and retries; every process sharing a channel must use the same prefix and interval."""

    prefix: str = "wavix:"
    alerted_ttl_s: int = 90 * DAY  # "one alert per call and reason, ever" lasts this long
    min_interval_s: float = 1.05  # per channel; Slack allows about one message per second
    lease_s: float = 60.0  # a claimed alert is due again after this if its worker died
    digest_max: int = 500  # alerts in one digest; the rest wait for the next message
    retry: Schedule = SLACK_SCHEDULE  # transient failures (5xx, rollup_error, timeouts); then a dead letter
    # How long a sent alert's `channel ts` is kept for the transcript's reply (TRANSCRIPT_WAIT + 15 min).
    thread_ttl_s: int = 45 * 60
    note_recheck_s: float = 5.0  # a transcript note whose alert is still pending looks again after this
    dead_letter_retention_s: int = 30 * DAY  # DEAD_LETTER_RETENTION: an alert's letter is kept as long as any


def retry_decision(policy: DeliveryPolicy, reason: str, failed: int, age_s: float,
                   retry_after: float | None = None) -> Decision:
    """Retry a Slack message whose try number `failed` (1-based) failed transiently, `age_s` after it was
    queued? The schedule of workers/retry.py decides, as for a destination: no second rule here."""
    return policy.retry.decide(Transient(reason, retry_after), failed, age_s)


DEFAULT_POLICY = DeliveryPolicy()


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """What Redis holds for one alert waiting to be sent."""

    alert: Alert
    attempts: int = 0
    queued_at_ms: int = 0


class DispatchStats(msgspec.Struct, kw_only=True):
    sent: int = 0  # alerts sent one per message
    digests: int = 0  # digest messages sent
    digested: int = 0  # alerts inside those digests
    dead_lettered: int = 0
    deferred: int = 0  # alerts put back for later (429, transient error)
    noted: int = 0  # transcript summaries replied in their alert's thread


_decode_pending = msgspec.msgpack.Decoder(Pending).decode


def encode_pending(pending: Pending) -> bytes:
    return _encoder.encode(pending)


def decode_pending(data: bytes) -> Pending:
    return _decode_pending(data)


class Note(msgspec.Struct, frozen=True, kw_only=True):
    """A call's transcript summary, to reply in the thread of the alert already sent about it."""

    call_id: str
    summary: str
    from_number: str = ""
    to_number: str = ""
    attempts: int = 0
    queued_at_ms: int = 0  # Redis's clock, for the retry schedule's age


encode_note = _encoder.encode
decode_note = msgspec.msgpack.Decoder(Note).decode


def note_keys(prefix: str = "wavix:") -> tuple[str, str]:
    """The ZSET of due times and the HASH of records, by call id, of transcript notes."""
    return prefix + "alerts:notes:due", prefix + "alerts:notes:data"


def thread_key(call_id: str, prefix: str = "wavix:") -> str:
    """Where a sent alert's `channel ts` waits for the call's transcript (a digest's, for each call in it)."""
    return f"{prefix}alert_ts:{call_id}"


def alerted_key(alert: Alert, prefix: str = "wavix:", channel: str = "slack") -> str:
    """The "sent once" mark of an alert at one channel (Slack's keeps the name it always had)."""
    where = "" if channel == "slack" else f"{channel}:"
    return f"{prefix}alerted:{where}{alert.key}"


def pending_keys(prefix: str = "wavix:", channel: str = "slack") -> tuple[str, str]:
    """The ZSET of due times and the HASH of records, by alert key (`call_id:reason`), of one channel's outbox
    (Slack's keeps the names it always had, so alerts queued before an upgrade still go out)."""
    where = "" if channel == "slack" else f"{channel}:"
    return f"{prefix}alerts:{where}due", f"{prefix}alerts:{where}data"


def escape(text: str) -> str:
    """Slack mrkdwn control characters; an unescaped `<!channel>` in a summary would ping everyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in an ellipsis when cut, never inside an `&amp;` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def _mrkdwn(text: str, limit: int = SECTION_MAX) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def _value(text: str | None) -> str:
    return clip(escape(text), _VALUE_MAX) if text else "—"


def _headline(alert: Alert) -> str:
    emoji, title = _TITLE[alert.reason]
    return f"{emoji} {title}: {alert.from_number or '?'} → {alert.to_number or '?'}"


def _fields(alert: Alert) -> list[dict[str, Any]]:
    pairs = [
        ("Call", f"`{_value(alert.call_id)}`"),
        ("When", _value(alert.occurred_at)),
        ("Direction", _value(alert.direction)),
        ("From", _value(alert.from_number)),
        ("To", _value(alert.to_number)),
        ("Disposition", _value(alert.disposition)),
        ("Answered by", _value(alert.answered_by)),
        ("Duration", f"{_value(alert.duration_s)} s"),
        ("Cost", f"${_value(alert.cost)}"),
        ("Destination", _value(alert.destination)),
    ]
    return [_mrkdwn(f"*{label}*\n{value}", FIELD_MAX) for label, value in pairs[:FIELDS_MAX]]


def _recording(url: str | None) -> dict[str, Any] | None:
    """A link button, or nothing when the URL is unusable (Slack rejects the whole message otherwise)."""
    if not url or len(url) > BUTTON_URL_MAX or not url.startswith(("https://", "http://")):
        return None
    button = {"type": "button", "text": _plain("Play recording", 75), "url": url, "action_id": "recording"}
    return {"type": "actions", "elements": [button]}


def render_alert(alert: Alert) -> Message:
    """One call: header, the essentials as fields, recording button, summary when known, context."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(_headline(alert), HEADER_MAX)},
        {"type": "section", "fields": _fields(alert)},
    ]
    recording = _recording(alert.recording_url)
    if recording:
        blocks.append(recording)
    if alert.summary:
        blocks.append({"type": "section", "text": _mrkdwn("*Summary*\n" + escape(alert.summary))})
    context = f"reason `{alert.reason}` · call `{_value(alert.call_id)}` · {_value(alert.occurred_at)}"
    blocks.append({"type": "context", "elements": [_mrkdwn(context, 2000)]})
    text = clip(escape(_headline(alert)) + f" (call {escape(alert.call_id)})", 500)
    return {"text": text, "blocks": blocks}


def _digest_line(alert: Alert) -> str:
    line = (
        f"• *{alert.reason}* {escape(alert.from_number)} → {escape(alert.to_number)} · "
        f"{escape(alert.disposition or '?')} · {escape(alert.duration_s)} s · ${escape(alert.cost)}"
        f" · `{escape(alert.call_id)}`"
    )
    return clip(line, _LINE_MAX)


def _pack(lines: list[str]) -> list[dict[str, Any]]:
    """Lines into as few sections as fit in SECTION_MAX each."""
    sections: list[dict[str, Any]] = []
    chunk: list[str] = []
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > SECTION_MAX:
            sections.append({"type": "section", "text": _mrkdwn("\n".join(chunk))})
            chunk = []
        chunk.append(line)
    if chunk:
        sections.append({"type": "section", "text": _mrkdwn("\n".join(chunk))})
    return sections


def render_note(note: Note) -> Message:
    """The reply in an alert's thread: the summary, naming the call (a digest's thread holds many calls)."""
    who = f"{escape(note.from_number or '?')} → {escape(note.to_number or '?')} · call `{escape(note.call_id)}`"
    blocks = [{"type": "section", "text": _mrkdwn(f"*Transcript summary* ({clip(who, 300)})\n" + escape(note.summary))}]
    return {"text": clip(f"Transcript summary of call {escape(note.call_id)}", 500), "blocks": blocks}


def render_digest(alerts: list[Alert]) -> Message:
    """Many calls in ONE message: a header with the count, a line per call, then "... and K more"."""
    count = len(alerts)
    lines: list[str] = []
    used = 0
    for alert in alerts[:DIGEST_LINES]:
        line = _digest_line(alert)
        if used + len(line) + 1 > TEXT_BUDGET:
            break
        lines.append(line)
        used += len(line) + 1
    if count > len(lines):
        lines.append(f"… and {count - len(lines)} more")
    reasons = Counter(alert.reason for alert in alerts)
    tally = " · ".join(f"{n} {_TALLY.get(reason, reason)}" for reason, n in sorted(reasons.items()))
    noun = "call alert" if count == 1 else "call alerts"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f":rotating_light: {count} {noun}", HEADER_MAX)},
        *_pack(lines),
        {"type": "context", "elements": [_mrkdwn(tally, 2000)]},
    ]
    return {"text": f"{count} {noun}: {tally}", "blocks": blocks[:MAX_BLOCKS]}
