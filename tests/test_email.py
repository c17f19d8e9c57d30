"""E-mail: alerts through a real SMTP server (aiosmtpd, run by the test) with STARTTLS and a login.

sandbox/email.py serves aiosmtpd with a throwaway CA's certificate (trustme), STARTTLS required and a login
required after it; the client is aiosmtplib, as a worker sends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from contract.errors import SettingsError
from contract.events import COMPLETED
from contract.settings import Settings
from sandbox import email as smtp
from sandbox.config import SandboxConfig
from tests.pipeline import by_type, pipeline
from tests.test_alerts import make_alert
from workers.alert.email import EmailSender, email_channel, relay_of, render_email
from workers.alert.errors import ChannelPermanent, ChannelRateLimited, ChannelRetry
from workers.alert.outbox import dispatch_pending
from workers.alert.rules import DeliveryPolicy


@pytest.fixture
def relay() -> Iterator[tuple[smtp.SmtpStandIn, smtp.SmtpAddress]]:
    standin = smtp.SmtpStandIn()
    with smtp.serve(standin) as address:
        yield standin, address


def sender_for(address: smtp.SmtpAddress, url: str | None = None) -> EmailSender:
    return EmailSender(relay_of(url or address.url, address.ca_file), "alerts@example.com", ["oncall@example.com"],
                       throttle_wait_s=1.0, timeout_s=5.0)


async def test_an_alert_is_sent_after_starttls_and_login(relay: tuple[smtp.SmtpStandIn, smtp.SmtpAddress]) -> None:
    """The relay requires STARTTLS and a login after it: the alert arrives, with the card's title as subject
    and its facts in the text and HTML parts, from and to the configured addresses."""
    standin, address = relay
    await sender_for(address).send(render_email([make_alert(8)]))
    [mail] = standin.received
    assert standin.logins == [(smtp.USER, True)]
    assert mail.subject == "[wavix alert] Call failed: +15551230000 → +49301230008"
    assert (mail.sender, mail.recipients) == ("alerts@example.com", ["oncall@example.com"])
    assert "Call: call-0008" in mail.text() and "<th align='left'>Call</th><td>call-0008</td>" in mail.text()


async def test_caller_text_cannot_inject_headers_or_html() -> None:
    """A summary with markup is escaped in the HTML part; a number with a line break cannot add a header."""
    content = render_email([make_alert(summary="<script>x</script>", from_number="+1\r\nBcc: evil@example.com")])
    assert "<script>" not in content["html"] and "&lt;script&gt;" in content["html"]
    assert "\n" not in content["subject"] and "\r" not in content["subject"]


@pytest.mark.parametrize(
    ("answer", "raised", "reason"),
    [
        ("421 4.7.0 Too many messages, slow down", ChannelRateLimited, "smtp 421"),
        ("451 4.7.1 Rate limited, try later", ChannelRateLimited, "smtp 451"),
        ("451 4.3.0 Mail server temporarily rejected message", ChannelRetry, "smtp 451"),
        ("554 5.6.0 Message content rejected", ChannelPermanent, "smtp 554"),
    ],
)
async def test_relay_answers_are_classified(
    relay: tuple[smtp.SmtpStandIn, smtp.SmtpAddress], answer: str, raised: type[Exception], reason: str
) -> None:
    """421 and 4.7.x slow the channel down without spending a try; another 4xx retries on the schedule; a
    5xx is for good."""
    standin, address = relay
    standin.script(answer)
    with pytest.raises(raised) as caught:
        await sender_for(address).send(render_email([make_alert()]))
    assert type(caught.value) is raised and caught.value.reason.startswith(reason)  # type: ignore[attr-defined]


async def test_a_wrong_password_is_for_good_and_never_shown(relay: tuple[smtp.SmtpStandIn, smtp.SmtpAddress]) -> None:
    """535 for a wrong login is permanent; neither password is in the error or the sender's repr."""
    standin, address = relay
    url = address.url.replace(smtp.PASSWORD, "not-the-password")
    sender = sender_for(address, url)
    with pytest.raises(ChannelPermanent, match="smtp 535") as caught:
        await sender.send(render_email([make_alert()]))
    assert standin.logins and all(login == (smtp.USER, False) for login in standin.logins)  # each mechanism tried
    assert standin.received == []
    assert "not-the-password" not in str(caught.value) + repr(sender) and smtp.PASSWORD not in repr(sender)


@contextlib.contextmanager
def plaintext_relay(standin: smtp.SmtpStandIn) -> Iterator[int]:
    controller = Controller(standin, hostname="127.0.0.1", port=smtp._free_port("127.0.0.1"))
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


async def test_a_relay_without_starttls_never_gets_the_password() -> None:
    """A relay that offers no STARTTLS is refused for good, before any login: the password never crosses
    the network in the clear."""
    standin = smtp.SmtpStandIn()
    with plaintext_relay(standin) as port:
        sender = EmailSender(relay_of(f"smtp://u:{smtp.PASSWORD}@127.0.0.1:{port}"), "a@example.com",
                             ["b@example.com"], timeout_s=5.0)
        with pytest.raises(ChannelPermanent, match="STARTTLS"):
            await sender.send(render_email([make_alert()]))
    assert standin.logins == [] and standin.received == []


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SMTP_URL": "https://mail.example.com"}, "SMTP_URL"),
        ({"SMTP_URL": "smtp://u:p@mail.example.com:587", "ALERT_EMAIL_TO": "oncall@example.com"}, "ALERT_EMAIL_FROM"),
        ({"SMTP_URL": "smtp://u:p@mail.example.com:587", "ALERT_EMAIL_FROM": "a@example.com"}, "ALERT_EMAIL_TO"),
        ({"ALERT_RULES": "failed=email"}, "ALERT_RULES"),
    ],
)
def test_email_settings_are_checked_at_start(env: dict[str, str], variable: str) -> None:
    """A URL that is not smtp(s)://, a missing sender or recipients, a rule naming e-mail without a relay:
    one line naming the variable."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable


async def test_the_worker_mails_each_alerted_call_once() -> None:
    """Duplicate webhooks, two workers side by side: every alerted call is in exactly one e-mail (its own,
    or a line of a digest), through the real SMTP server."""
    standin = smtp.SmtpStandIn()
    with smtp.serve(standin) as address:
        async with pipeline(SandboxConfig(seed=5, transcript_share=0.0), SMTP_URL=address.url,
                            SMTP_CA_FILE=address.ca_file, ALERT_EMAIL_FROM="alerts@example.com",
                            ALERT_EMAIL_TO="oncall@example.com", ALERT_RULES="failed=email,machine=email") as p:
            await p.place_and_send(30, duplicates=1.0)
            await asyncio.gather(p.run_worker(), p.run_worker())
            channel = email_channel(relay_of(address.url, address.ca_file), "alerts@example.com",
                                    ["oncall@example.com"], pace_s=0.1)
            await dispatch_pending(p.redis, channel, digest_threshold=5,
                                   dead_letter_stream=p.settings.dead_letter_stream,
                                   policy=DeliveryPolicy(prefix=p.settings.key_prefix))
            alerted = [c for c, e in by_type(await p.events(), COMPLETED).items() if e[0].data.alert_reasons]
            assert alerted, "the seed should give alerted calls"
            mails = [f"{m.subject}\n{m.message.get_body(preferencelist=('plain',)).get_content()}"  # type: ignore[union-attr]
                     for m in standin.received]
            assert all(sum(call_id in m for m in mails) == 1 for call_id in alerted)
            assert p.slack.accepted() == []  # the rules send these reasons to e-mail alone
