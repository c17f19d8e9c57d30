"""Alerting's language: which alerts go to which channel (ALERT_RULES), and what words to listen for (pure).

    ALERT_RULES   failed,machine                        each reason to the default channels, as before
                  failed=slack,machine=slack+teams       ... or to the channels named, joined by `+`
                  keyword=teams,keyword:lawyer=pagerduty what was said: every keyword rule, or one
                  pipeline=pagerduty+slack               the pipeline's own incidents (all, or `pipeline:KIND`)
    ALERT_KEYWORDS  cancel:cancel|cancellation|close my account, lawyer@caller:lawyer|attorney|sue
                  a rule's name, optionally who must say it (@caller or @callee), then its words and phrases

Reasons: a call's outcome (`failed`, `machine`, `busy`, `no_answer`: contract/events.py ALERT_RULES), `keyword`
or `keyword:NAME`, `pipeline` or `pipeline:KIND` (PIPELINE_KINDS). Channels: `slack`, `teams`, `pagerduty`,
`email`; the default channels are every configured one but PagerDuty, which pages someone and so only gets what
a rule names. The alerts file (ALERTS_FILE, workers/alert/alertsfile.py) says the same per account. Everything
is checked when a role starts; an error is one line naming the entry (RulesError).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import msgspec

from contract.events import ALERT_RULES

CALL_REASONS: tuple[str, ...] = ALERT_RULES  # a call's outcomes (contract/events.py)

CHANNELS = ("slack", "teams", "pagerduty", "email")
DEFAULT_CHANNELS = ("slack", "teams", "email")  # what a bare reason goes to, when configured
PIPELINE_KINDS = ("destination_failing", "destination_paused", "dead_letters", "missed_webhooks", "wavix_auth",
                  "transcripts_not_provisioned")
FAMILIES = ("keyword", "pipeline")
RETIRED_TEAMS_HOSTS = ("webhook.office.com", "outlook.office.com")  # Office 365 connectors: Microsoft retired them
Speaker = str  # "caller" | "callee" | ""
MAX_TERMS = 20  # a small list per rule: a long one is a search engine's job, and floods the channel
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class RulesError(ValueError):
    """One bad entry of ALERT_RULES, ALERT_KEYWORDS or the alerts file; the message is one line."""


class Route(msgspec.Struct, frozen=True):
    """One rule: `reason` (a call reason, `keyword[:NAME]`, `pipeline[:KIND]`) to `channels` (empty: the
    default channels)."""

    reason: str
    channels: tuple[str, ...] = ()

    def matches(self, reason: str) -> bool:
        """`keyword` matches every `keyword:NAME`, `pipeline` every `pipeline:KIND`; others match themselves."""
        return self.reason == reason or (self.reason in FAMILIES and reason.startswith(self.reason + ":"))


class KeywordRule(msgspec.Struct, frozen=True):
    """Listen for `terms` (words or phrases), said by `speaker` ("caller", "callee"; "" either)."""

    name: str
    terms: tuple[str, ...]
    speaker: Speaker = ""


def fold(text: str) -> str:
    """Case- and accent-insensitive form: `Annulé` and `annule` fold alike."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _reason(text: str, keyword_names: Iterable[str] | None) -> str:
    family, _, name = text.partition(":")
    if text in CALL_REASONS or text in FAMILIES:
        return text
    if family == "keyword" and name:
        if keyword_names is not None and name not in set(keyword_names):
            raise RulesError(f"{text!r}: no keyword rule {name!r} (ALERT_KEYWORDS or the alerts file's keywords)")
        return text
    if family == "pipeline" and name in PIPELINE_KINDS:
        return text
    known = ", ".join([*CALL_REASONS, "keyword[:NAME]", "pipeline[:KIND]"])
    raise RulesError(f"unknown rule {text}; known: {known} (pipeline kinds: {', '.join(PIPELINE_KINDS)})")


def parse_route(text: str, keyword_names: Iterable[str] | None = None) -> Route:
    """One `reason[=channel[+channel...]]`."""
    reason, eq, where = (part.strip() for part in text.partition("="))
    channels = tuple(c.strip() for c in where.split("+") if c.strip()) if eq else ()
    if eq and not channels:
        raise RulesError(f"{text!r}: name at least one channel after '=' ({', '.join(CHANNELS)})")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise RulesError(f"{text!r}: unknown channel {', '.join(unknown)}; known: {', '.join(CHANNELS)}")
    return Route(_reason(reason, keyword_names), channels)


def parse_routes(entries: Iterable[str], keyword_names: Iterable[str] | None = None) -> tuple[Route, ...]:
    names = None if keyword_names is None else tuple(keyword_names)
    return tuple(parse_route(entry, names) for entry in entries if entry.strip())


def call_reasons(entries: Iterable[str]) -> frozenset[str]:
    """The call outcomes ALERT_RULES alerts on: what enrichment reports in an event's `alert_reasons`."""
    return frozenset(route.reason for route in parse_routes(entries) if route.reason in CALL_REASONS)


def parse_keyword(text: str) -> KeywordRule:
    """One `NAME[@caller|@callee]:term|term|...` of ALERT_KEYWORDS."""
    head, colon, body = text.partition(":")
    name, at, speaker = (part.strip() for part in head.partition("@"))
    if not colon:
        raise RulesError(f"{text!r}: a keyword rule is NAME:word|phrase|... (e.g. cancel:cancel|close my account)")
    return keyword_rule(name, [t for t in body.split("|")], speaker if at else "")


def keyword_rule(name: str, terms: Iterable[str], speaker: str = "") -> KeywordRule:
    """A checked rule: a short lowercase name, 1-20 terms of letters, digits, spaces, an optional speaker."""
    if not _NAME.match(name):
        raise RulesError(f"keyword rule name {name!r}: lowercase letters, digits, '-' and '_', at most 40")
    if speaker not in ("", "caller", "callee"):
        raise RulesError(f"keyword rule {name}: speaker must be caller or callee, not {speaker!r}")
    cleaned = tuple(" ".join(term.split()) for term in terms)
    if not cleaned or any(not term for term in cleaned):
        raise RulesError(f"keyword rule {name}: every word or phrase must have text (an empty one matches nothing)")
    if len(cleaned) > MAX_TERMS:
        raise RulesError(f"keyword rule {name}: {len(cleaned)} words and phrases; at most {MAX_TERMS} a rule")
    return KeywordRule(name, cleaned, speaker)


def parse_keywords(entries: Iterable[str]) -> tuple[KeywordRule, ...]:
    rules = tuple(parse_keyword(entry) for entry in entries if entry.strip())
    names = [rule.name for rule in rules]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RulesError(f"keyword rule {', '.join(twice)} is defined twice")
    return rules


def check(rules: Iterable[str], keyword_rules: tuple[KeywordRule, ...], configured: Iterable[str]) -> None:
    """Everything ALERT_RULES says, against the keyword rules and the channels that are configured."""
    routes = parse_routes(rules, [k.name for k in keyword_rules])
    have = set(configured)
    for route in routes:
        missing = [c for c in route.channels if c not in have]
        if missing:
            raise RulesError(f"{route.reason}={'+'.join(route.channels)}: channel {', '.join(missing)} is not "
                             "configured (its settings: see the README's alert channels)")
    if keyword_rules and not any(r.reason == "keyword" or r.reason.startswith("keyword:") for r in routes):
        raise RulesError("keyword rules are set but no entry routes them: add keyword (or keyword=CHANNEL)")
