"""A local SMTP relay for alert e-mail: aiosmtpd's server, with STARTTLS required and a login, as a relay has.

    serve(standin) -> SmtpAddress(host, port, ca_file, url)    url = smtp://USER:PASSWORD@127.0.0.1:PORT

A real SMTP server (aiosmtpd, the asyncio SMTP server of the aio-libs family), not a hand-written one: it
speaks EHLO, STARTTLS (with a certificate from a throwaway CA made by trustme; the client is told the CA
through SMTP_CA_FILE), AUTH PLAIN/LOGIN only after TLS, MAIL, RCPT, DATA. It refuses a wrong login with 535,
and keeps every accepted message (`received`, parsed). `script(...)` queues the answers to the next DATA
commands: "421 4.7.0 ..." for a relay asking to slow down, "554 5.6.0 ..." for a message refused for good.
With `echo`, each accepted message is printed (the demo shows them so).

Tests: `with serve(standin) as smtp: ...` (the server runs in its own thread, as aiosmtpd's Controller does).
Demo: `python -m sandbox.email`.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import os
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

USER, PASSWORD = "alerts@example.com", "sandbox-smtp-password-1234"


@dataclass(frozen=True)
class SmtpAddress:
    host: str
    port: int
    ca_file: str  # the throwaway CA's certificate (PEM): SMTP_CA_FILE

    @property
    def url(self) -> str:
        return f"smtp://{USER.replace('@', '%40')}:{PASSWORD}@{self.host}:{self.port}"


@dataclass
class Mail:
    """One accepted message: the envelope and the parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    arrived_at: float

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        """The plain-text part and the HTML part, one after the other."""
        parts = [p.get_content() for p in self.message.walk() if p.get_content_type() in ("text/plain", "text/html")]
        return "\n".join(str(p) for p in parts)


class SmtpStandIn:
    """aiosmtpd's handler and authenticator: records accepted messages, plays scripted answers first."""

    def __init__(self, *, user: str = USER, password: str = PASSWORD, echo: bool = False) -> None:
        self.user, self.password, self.echo = user, password, echo
        self.received: list[Mail] = []
        self.answers: list[str] = []  # every DATA's answer, scripted or not
        self.logins: list[tuple[str, bool]] = []  # (user, accepted), the password never kept
        self._script: deque[str] = deque()
        self._lock = threading.Lock()

    def script(self, *answers: str) -> None:
        with self._lock:
            self._script.extend(answers)

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user
              and auth_data.password.decode() == self.password)
        self.logins.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?", ok))
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd calls it by this name
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            self.answers.append(scripted)
            return scripted
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mail = Mail(envelope.mail_from, list(envelope.rcpt_tos), message, time.monotonic())
        self.received.append(mail)
        self.answers.append("250 2.0.0 Message accepted for delivery")
        if self.echo:
            print(f"\n--- E-mail to {', '.join(mail.recipients)} at {time.strftime('%H:%M:%S')} ---\n"
                  f"Subject: {mail.subject}\n{_plain(message)}", flush=True)
        return "250 2.0.0 Message accepted for delivery"


def _plain(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if part is not None else ""


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(standin: SmtpStandIn, host: str = "127.0.0.1", port: int = 0) -> Iterator[SmtpAddress]:
    """Runs aiosmtpd on a loopback port (STARTTLS required, login required after TLS) until the block ends."""
    import trustme  # a test and demo dependency only
    from aiosmtpd.controller import Controller

    ca = trustme.CA()
    cert = ca.issue_cert(host, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    with tempfile.TemporaryDirectory() as folder:
        ca_file = os.path.join(folder, "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        port = port or _free_port(host)
        controller = Controller(standin, hostname=host, port=port, tls_context=context, require_starttls=True,
                                auth_required=True, auth_require_tls=True, authenticator=standin.authenticate,
                                server_hostname=host)
        controller.start()
        try:
            yield SmtpAddress(host, port, ca_file)
        finally:
            controller.stop()


def run(host: str = "127.0.0.1", port: int = 8025) -> None:
    """Runs the relay in the foreground, printing each message it accepts."""
    with serve(SmtpStandIn(echo=True), host, port) as smtp:
        print(f"SMTP stand-in: SMTP_URL={smtp.url} SMTP_CA_FILE={smtp.ca_file}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local SMTP relay (STARTTLS, login) that shows alert e-mail")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)
    run(args.host, args.port)


if __name__ == "__main__":
    main()
