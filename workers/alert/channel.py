"""Channel: one place alerts go (Slack, Teams, PagerDuty, e-mail), as the outbox sees it: a name, a sender, a look.

    Channel(name, sender, render, pace_s, threads)
      name     what routes call it (ALERT_RULES `failed=teams`), and what its Redis keys and dead letters carry
      sender   the transport: `send(message)`, raising the tree of workers/alert/errors.py (the `Sender` protocol)
      render   alerts -> one message in the service's own format: one alert, or a digest of many
      pace_s   the least time between two messages to it, shared by every worker (workers/alert/gate.py)
      threads  whether a transcript summary can be replied under a sent alert (only Slack's bot API says where)

The outbox (workers/alert/outbox.py) is the same for all: once per call and reason and channel, paced, digested
under a flood, retried on the schedule, dead-lettered as `{name}_alert`. A channel module (slack.py, teams.py,
pagerduty.py, email.py) owns only its sender and its look. Slack's Sender is the model the others follow; a bare
Sender passed to the outbox is taken to be Slack's (workers/alert/slack.py `slack_channel`), as it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from workers.alert.rules import Alert, Message

SLACK = "slack"  # the channel of the SLACK_* settings; its Redis keys are those Slack always had


class Posted(msgspec.Struct, frozen=True):
    """Where a service put a message, when it says so: Slack's channel id and the message's `ts`."""

    channel: str
    ts: str


class Sender(Protocol):
    """One channel's transport. `channel_key` names it in Redis keys and logs: never a secret (a hash of a
    secret URL at most). `send` returns where the message is when the transport says so, else None."""

    @property
    def channel_key(self) -> str: ...

    async def send(self, message: Message) -> Posted | None: ...


Render = Callable[[Sequence[Alert]], Message]


@dataclass(frozen=True)
class Channel:
    """One configured channel; see the module's docstring."""

    name: str
    sender: Sender
    render: Render
    pace_s: float | None = None  # None: the DeliveryPolicy's min_interval_s (Slack's ~1/s)
    threads: bool = False

    @property
    def key(self) -> str:
        return self.sender.channel_key

    @property
    def dead_kind(self) -> str:
        """The dead letters' kind: `slack_alert` as before, `teams_alert`, `pagerduty_alert`, `email_alert`."""
        return f"{self.name}_alert"

