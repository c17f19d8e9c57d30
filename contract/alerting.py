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
a rule names. The alerts file (ALERTS_FILE) says the same in YAML, and rules per account:

    rules: [failed=slack, keyword=teams, pipeline=pagerduty]      in place of ALERT_RULES
    keywords: {cancel: {words: [cancel, close my account], speaker: caller}}
    accounts: {acme: [failed=email, keyword:cancel=teams]}        acme's calls follow these instead Everything
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
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("\u2019", "'"))  # either apostrophe
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


class AlertsFile(msgspec.Struct, frozen=True):
    """What alerts where: the deployment's rules and keywords, and rules per account (in place of the
    deployment's for that account's calls). From ALERT_RULES and ALERT_KEYWORDS, and ALERTS_FILE."""

    rules: tuple[Route, ...] = ()
    keywords: tuple[KeywordRule, ...] = ()
    accounts: dict[str, tuple[Route, ...]] = {}

    def routes(self, account: str = "") -> tuple[Route, ...]:
        return self.accounts.get(account, self.rules)

    def call_reasons(self) -> frozenset[str]:
        """The call outcomes any rule alerts on: what enrichment reports in an event's `alert_reasons`."""
        every = [*self.rules, *(r for routes in self.accounts.values() for r in routes)]
        return frozenset(route.reason for route in every if route.reason in CALL_REASONS)

    def check(self, configured: Iterable[str]) -> None:
        """Every rule names configured channels; keyword rules are routed somewhere."""
        have = set(configured)
        every = [*self.rules, *(r for routes in self.accounts.values() for r in routes)]
        for route in every:
            missing = [c for c in route.channels if c not in have]
            if missing:
                raise RulesError(f"{route.reason}={'+'.join(route.channels)}: channel {', '.join(missing)} is not "
                                 "configured (its settings: see the README's alert channels)")
        if self.keywords and not any(r.reason == "keyword" or r.reason.startswith("keyword:") for r in every):
            raise RulesError("keyword rules are set but no rule routes them: add keyword (or keyword=CHANNEL)")


def configuration(rules: Iterable[str], keywords: Iterable[str], alerts_file: str = "") -> AlertsFile:
    """ALERT_RULES, ALERT_KEYWORDS and the alerts file together: the file's `rules:`, when it has them, take
    the place of ALERT_RULES; keyword rules come from both (a name once)."""
    from_env = parse_keywords(keywords)
    loaded = load_file(alerts_file, [k.name for k in from_env]) if alerts_file else AlertsFile()
    every = (*from_env, *loaded.keywords)
    names = [k.name for k in every]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RulesError(f"keyword rule {', '.join(twice)} is defined twice")
    return AlertsFile(loaded.rules or parse_routes(rules, names), every, loaded.accounts)


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(f"{where}: a list of rules such as [failed=slack, pipeline=pagerduty]")
    return value


def _keyword_entry(name: object, value: object) -> KeywordRule:
    if not isinstance(value, dict) or set(value) - {"words", "speaker"} or "words" not in value:
        raise RulesError(f"keywords.{name}: {{words: [word, phrase, ...], speaker: caller|callee (optional)}}")
    words = value["words"]
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise RulesError(f"keywords.{name}.words: a list of words and phrases")
    return keyword_rule(str(name), words, str(value.get("speaker") or ""))


def parse_file(text: str, source: str = "alerts file", known_keywords: Iterable[str] = ()) -> AlertsFile:
    """The alerts file's YAML; RulesError names the file and the entry (one line)."""
    import yaml  # a dependency already (the routing file, the accounts file)

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RulesError(f"{source}: not YAML{f' (line {mark.line + 1})' if mark else ''}") from e
    if not isinstance(data, dict) or set(data) - {"rules", "keywords", "accounts"}:
        raise RulesError(f"{source}: the top level has rules:, keywords: and accounts: only")
    try:
        entries = data.get("keywords") or {}
        if not isinstance(entries, dict):
            raise RulesError("keywords: a mapping of rule names to {words: [...]}")
        keywords = tuple(_keyword_entry(name, value) for name, value in entries.items())
        names = [*known_keywords, *(k.name for k in keywords)]
        rules = tuple(parse_route(r, names) for r in _strings(data.get("rules") or [], "rules"))
        accounts = data.get("accounts") or {}
        if not isinstance(accounts, dict):
            raise RulesError("accounts: a mapping of account names to their lists of rules")
        per_account = {str(name): tuple(parse_route(r, names) for r in _strings(value, f"accounts.{name}"))
                       for name, value in accounts.items()}
    except RulesError as e:
        raise RulesError(f"{source}: {e}") from e
    return AlertsFile(rules, keywords, per_account)


def load_file(path: str, known_keywords: Iterable[str] = ()) -> AlertsFile:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise RulesError(f"{path}: cannot read the alerts file ({e.strerror})") from e
    return parse_file(text, path.rsplit("/", 1)[-1], known_keywords)
