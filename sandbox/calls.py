"""Simulated calls: frozen records of what happened on each call, generated from a seed.

`generate_call(config, index)` is a pure function of `(config.seed, index)` and the mix shares, so call
number 17 of seed 7 is the same call whichever batch makes it, in any process: tests and benchmarks can
rely on it. A `SimCall` holds the facts (who called whom, how it ended, what it cost, what was said);
the API and the webhooks render them in Wavix's shapes (`sandbox.wire`, `sandbox.webhooks`).

The mix covers what Wavix produces: both directions (outbound = `placed`, inbound = `received`), every
disposition, answering machines on outbound calls only, numbers of several countries with and without
`+`, prices as Decimal strings, recordings for answered calls and transcripts for a share of them.
Every call is placed from (outbound) or to (inbound) one of the account's own numbers (`account_numbers`,
served by `GET /v1/numbers`), so a client can tell the direction from the numbers alone.

Facts that are not Wavix's data but say what the sandbox did with a call (`webhooks_dropped`,
`Transcript.nulls`) come from draws of their own, so turning them on changes no other fact of any call.
"""

from __future__ import annotations

import functools
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec

from sandbox import speech, world
from sandbox.config import SandboxConfig

DISPOSITIONS = (("answered", 0.6), ("noanswer", 0.15), ("busy", 0.1), ("failed", 0.15))
TRANSCRIPTION_PER_MINUTE = Decimal("0.0050")


class Turn(msgspec.Struct, frozen=True):
    speaker: str  # the speaker's number, as Wavix writes it in `type`
    s: int  # ms from answer
    e: int
    text: str
    sentiment: str | None = None


class Transcript(msgspec.Struct, frozen=True, kw_only=True):
    uuid: str
    status: str  # completed | failed
    language: str | None
    turns: tuple[Turn, ...]
    summary: str
    score: str  # "1.0".."5.0"
    charge: str
    legacy: bool = False  # served in the older docs' shape (see SandboxConfig.legacy_transcript_share)
    nulls: bool = False  # served with the nulls the spec forbids (see SandboxConfig.transcript_nulls_share)


class SimCall(msgspec.Struct, frozen=True, kw_only=True, rename={"from_": "from"}):
    """One simulated call; `date` is when it started (ISO 8601 UTC, ms), set when the call is placed."""

    call_id: str
    index: int
    direction: str  # outbound | inbound
    from_: str
    to: str
    date: str
    ring_s: int
    disposition: str  # answered | noanswer | busy | failed
    answered_by: str | None  # human | machine | None
    duration: int  # seconds talked; 0 unless answered
    destination: str
    per_minute: str
    charge: str
    sip_trunk: str | None
    forward_fee: str
    parent_call_id: str | None
    tag: str
    transcript: Transcript | None = None
    account_number: str = ""  # which of the account's numbers (E.164, `+`) placed or took it
    webhooks_dropped: bool = False  # its work-starting webhooks are never sent (SandboxConfig.drop_webhooks_share)
    account: int = 0  # the account it belongs to: 0 the master, else a sub-account's id (sandbox/accounts.py)

    @property
    def answered(self) -> bool:
        return self.disposition == "answered"

    @property
    def type(self) -> str:
        """The CDR list's name for the direction."""
        return "placed" if self.direction == "outbound" else "received"

    def times(self) -> tuple[datetime, datetime | None, datetime]:
        """When it started, was answered (None if never) and ended."""
        started = parse_time(self.date)
        answered = started + timedelta(seconds=self.ring_s) if self.answered else None
        return started, answered, (answered or started) + timedelta(seconds=self.duration or self.ring_s)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_time(moment: datetime) -> str:
    """Wavix's timestamps: `2023-08-21T06:43:36.000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@functools.lru_cache(maxsize=16)
def account_numbers(seed: int) -> tuple[str, ...]:
    """The account's own numbers (DIDs): caller ID of its outbound calls, callee of its inbound ones."""
    rng = random.Random(f"wavix-sandbox:{seed}:account")
    return tuple(world.phone_number(rng, c, mobile=False) for c in world.COUNTRIES[:4])


def _pick_disposition(rng: random.Random) -> str:
    draw = rng.random()
    for disposition, share in DISPOSITIONS:
        if draw < share:
            return disposition
        draw -= share
    return "answered"


def generate_call(config: SandboxConfig, index: int, date: str = "1970-01-01T00:00:00.000Z") -> SimCall:
    """Call number `index` of `config.seed`: the same facts every time (the date is the caller's)."""
    rng = random.Random(f"wavix-sandbox:{config.seed}:{index}")
    outbound = rng.random() < 0.6
    country = rng.choice(world.COUNTRIES)
    mobile = rng.random() < 0.5
    remote = world.phone_number(rng, country, mobile)
    own = rng.choice(account_numbers(config.seed))
    disposition = _pick_disposition(rng)
    answered = disposition == "answered"
    machine = outbound and answered and rng.random() < config.machine_share
    duration = (rng.randrange(3, 25) if machine else min(1800, 5 + int(rng.expovariate(1 / 120)))) if answered else 0
    if outbound:
        per_minute, forward_fee, dest = (country.mobile if mobile else country.fixed), Decimal(0), world.destination(
            country, mobile)
    else:
        per_minute, forward_fee = world.INBOUND_PER_MINUTE, rng.choice(world.FORWARD_FEES)
        dest = _inbound_destination(rng, forward_fee)
    plus = rng.random() < 0.5
    call_id = _uuid(rng)
    human = answered and not machine
    transcript = _transcript(rng, config, call_id, (own, remote), duration) if human else None
    if transcript is not None and _draw(config, index, "nulls") < config.transcript_nulls_share:
        transcript = msgspec.structs.replace(transcript, nulls=True)
    return SimCall(
        call_id=call_id,
        index=index,
        direction="outbound" if outbound else "inbound",
        from_=_shown(own if outbound else remote, plus),
        to=_shown(remote if outbound else own, plus),
        date=date,
        ring_s=rng.randrange(2, 30) if disposition != "failed" else 0,
        disposition=disposition,
        answered_by=("machine" if machine else "human") if outbound and answered else None,
        duration=duration,
        destination=dest,
        per_minute=world.money(per_minute),
        charge=world.money(world.charge(per_minute, duration)),
        sip_trunk=str(rng.randrange(10000, 99999)) if outbound else None,
        forward_fee=world.money(forward_fee * (-(-duration // 60))),
        parent_call_id=_uuid(rng) if not outbound and rng.random() < 0.2 else None,
        tag=rng.choice(("", "support", "sales", "campaign-7")),
        transcript=transcript,
        account_number=own,
        webhooks_dropped=_draw(config, index, "drop") < config.drop_webhooks_share,
    )


def _draw(config: SandboxConfig, index: int, what: str) -> float:
    """A uniform draw of its own for one fact of call `index`: other facts keep their values."""
    return random.Random(f"wavix-sandbox:{config.seed}:{what}:{index}").random()


def _shown(number: str, plus: bool) -> str:
    return number if plus else number.lstrip("+")


def _inbound_destination(rng: random.Random, forward_fee: Decimal) -> str:
    """Inbound `destination`: the SIP trunk, SIP URI or (with a forward fee) PSTN number it went to."""
    if forward_fee:
        return world.phone_number(rng, rng.choice(world.COUNTRIES), mobile=True).lstrip("+")
    return rng.choice(("Support trunk", "sip:support@sip.example.com", "Sales trunk"))


def _transcript(
    rng: random.Random, config: SandboxConfig, call_id: str, numbers: tuple[str, str], duration: int
) -> Transcript | None:
    """A transcript for a share of person-answered calls: agent = the account's number."""
    if rng.random() >= config.transcript_share:
        return None
    language = rng.choice(speech.LANGUAGES)
    failed = rng.random() < config.transcript_failed_share
    with_sentiment = rng.random() < 0.5
    speakers = [n if rng.random() < 0.5 else n.lstrip("+") for n in numbers]
    turns = () if failed else tuple(
        Turn(speakers[0] if agent else speakers[1], s, e, text,
             rng.choice(speech.SENTIMENTS) if with_sentiment else None)
        for agent, s, e, text in speech.conversation(rng, language, duration)
    )
    return Transcript(
        uuid=_uuid(rng),
        status="failed" if failed else "completed",
        language=None if failed else language,
        turns=turns,
        summary="" if failed else speech.summary(rng, language),
        score="" if failed else f"{rng.randrange(10, 51) / 10:.1f}",
        charge=world.money(TRANSCRIPTION_PER_MINUTE * (-(-duration // 60))),
        legacy=rng.random() < config.legacy_transcript_share,
    )
