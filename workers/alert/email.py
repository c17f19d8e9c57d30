"""E-mail: alerts as one message each (a digest under a flood), over SMTP with TLS and login, by aiosmtplib.

    SMTP_URL = smtp://USER:PASSWORD@HOST:587    STARTTLS, required: no password ever crosses in the clear
               smtps://USER:PASSWORD@HOST:465   TLS from the first byte
    ALERT_EMAIL_FROM, ALERT_EMAIL_TO (comma-separated), SMTP_CA_FILE (a private relay's CA, else the system's)

aiosmtplib (an asyncio SMTP client, typed, maintained since 2016) sends; each message is a fresh connection:
alerts are paced at one every 2 s at most, and a relay is happier with short sessions than with a held one.
The body is the alert's Card (workers/alert/card.py) as text and as HTML (every value escaped).

What the relay answers, into workers/alert/errors.py's tree: 2xx sent; 421 or a 4.7.x "slow down" is the
relay's rate limit: the channel waits `throttle_wait_s` (60 s) without spending a try, as a 429 does; any other
4xx, a refused connection, a timeout or a dropped session is retried on the schedule; 5xx (a refused login,
recipient or message) is for good, and so is a relay that offers no STARTTLS (the password is never sent then).
The password is a secret: it is never logged, never in an error's reason, and the channel's key is a hash of
the relay, the login and the recipients.
"""

from __future__ import annotations

import hashlib
import html
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

import aiosmtplib

from workers.alert.card import Card, card_for, digest_card
from workers.alert.channel import Channel
from workers.alert.errors import REASON_MAX, ChannelPermanent, ChannelRateLimited, ChannelRetry
from workers.alert.rules import Alert, Message, clip

EMAIL = "email"
PACE_S = 2.0
THROTTLE_WAIT_S = 60.0
SUBJECT_MAX, TEXT_MAX = 200, 20_000
_COLOUR = {"critical": "#b00020", "error": "#b00020", "warning": "#b26a00", "info": "#33691e"}


@dataclass(frozen=True)
class Relay:
    """Where and how to send: from SMTP_URL (the password stays out of repr)."""

    host: str
    port: int
    implicit_tls: bool
    username: str = ""
    password: str = ""
    ca_file: str = ""

    def __repr__(self) -> str:
        return f"Relay({self.host}:{self.port}, tls={'implicit' if self.implicit_tls else 'starttls'})"


def relay_of(url: str, ca_file: str = "") -> Relay:
    """SMTP_URL as a Relay; ValueError (naming no password) for one that is not smtp:// or smtps://."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("must be smtp://USER:PASSWORD@HOST:587 (STARTTLS) or smtps://USER:PASSWORD@HOST:465")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
    except ValueError as e:
        raise ValueError("has a port that is not a number") from e
    return Relay(parts.hostname, port, parts.scheme == "smtps", unquote(parts.username or ""),
                 unquote(parts.password or ""), ca_file)


def _text(card: Card) -> str:
    lines = [card.title, ""]
    lines += [f"{label}: {value}" for label, value in card.facts]
    if card.quote:
        lines += ["", "Said:", *(f"> {line}" for line in card.quote.splitlines())]
    if card.text:
        lines += ["", card.text]
    if card.lines:
        lines += ["", *card.lines]
    lines += ["", *(f"{label}: {url}" for label, url in card.links), "", card.footer]
    return clip("\n".join(lines), TEXT_MAX)


def _html(card: Card) -> str:
    e = html.escape
    rows = "".join(f"<tr><th align='left'>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in card.facts)
    parts = [f"<h2 style='color:{_COLOUR[card.severity]}'>{e(card.title)}</h2>"]
    if rows:
        parts.append(f"<table>{rows}</table>")
    if card.quote:
        parts.append(f"<p><b>Said</b></p><blockquote>{e(card.quote)}</blockquote>")
    if card.text:
        parts.append(f"<p>{e(card.text)}</p>")
    if card.lines:
        parts.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in card.lines) + "</ul>")
    parts += [f"<p><a href='{e(url)}'>{e(label)}</a></p>" for label, url in card.links]
    parts.append(f"<p style='color:#666'><small>{e(card.footer)}</small></p>")
    return clip("".join(parts), TEXT_MAX)


def render_email(alerts: Sequence[Alert]) -> Message:
    """One alert (or a digest) as a subject, a text body and an HTML body."""
    card = card_for(alerts[0]) if len(alerts) == 1 else digest_card(alerts)
    subject = " ".join(f"[wavix alert] {card.title}".split())  # one line: no header injection by a caller
    return {"subject": clip(subject, SUBJECT_MAX), "text": _text(card), "html": _html(card)}


_TRANSIENT = (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)


def _classify(e: Exception, throttle_wait_s: float) -> Exception:
    if isinstance(e, aiosmtplib.SMTPRecipientsRefused):
        refused = e.recipients[0] if e.recipients else None
        return ChannelPermanent(f"recipient refused: {refused.code} {refused.message}"[:REASON_MAX]
                                if refused else "recipients refused")
    code = getattr(e, "code", None)
    text = f"smtp {code}: {getattr(e, 'message', '')}".strip()[:REASON_MAX] if code else type(e).__name__
    if isinstance(e, aiosmtplib.SMTPResponseException) and code is not None and code > 0:
        if code == 421 or " 4.7." in f" {e.message}":
            return ChannelRateLimited(throttle_wait_s, text)
        return ChannelRetry(None, text) if 400 <= code < 500 else ChannelPermanent(text)
    if isinstance(e, _TRANSIENT):
        return ChannelRetry(None, f"smtp_transport:{type(e).__name__}")
    # No STARTTLS or no AUTH offered, an address it cannot take: the relay will not change its mind by itself.
    return ChannelPermanent(f"smtp: {str(e)[:120]}" if isinstance(e, aiosmtplib.SMTPException) else type(e).__name__)


class EmailSender:
    """Sends each message through `relay` from `sender` to `recipients`."""

    def __init__(self, relay: Relay, sender: str, recipients: Sequence[str], *, timeout_s: float = 20.0,
                 throttle_wait_s: float = THROTTLE_WAIT_S) -> None:
        self.relay, self.sender, self.recipients = relay, sender, tuple(recipients)
        self.timeout_s, self.throttle_wait_s = timeout_s, throttle_wait_s
        seen = f"{relay.host}:{relay.port}:{relay.username}:{','.join(self.recipients)}"
        self._key = "email-" + hashlib.sha256(seen.encode()).hexdigest()[:16]
        self._tls = ssl.create_default_context(cafile=relay.ca_file or None)

    def __repr__(self) -> str:
        return f"EmailSender({self._key}, {self.relay!r})"

    @property
    def channel_key(self) -> str:
        return self._key

    def message(self, content: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"], mail["From"], mail["To"] = content["subject"], self.sender, ", ".join(self.recipients)
        mail["Date"], mail["Message-ID"] = formatdate(localtime=False), make_msgid(domain="wavix-events")
        mail.set_content(content["text"])
        mail.add_alternative(content["html"], subtype="html")
        return mail

    async def send(self, message: Message) -> None:
        relay = self.relay
        try:
            await aiosmtplib.send(self.message(message), hostname=relay.host, port=relay.port,
                                  username=relay.username or None, password=relay.password or None,
                                  use_tls=relay.implicit_tls, start_tls=not relay.implicit_tls,
                                  tls_context=self._tls, timeout=self.timeout_s)
        except (aiosmtplib.SMTPException, OSError) as e:
            raise _classify(e, self.throttle_wait_s) from None  # its text may hold the login: not chained


def email_channel(relay: Relay, sender: str, recipients: Sequence[str], *, pace_s: float = PACE_S,
                  throttle_wait_s: float = THROTTLE_WAIT_S) -> Channel:
    return Channel(EMAIL, EmailSender(relay, sender, recipients, throttle_wait_s=throttle_wait_s), render_email,
                   pace_s=pace_s)
