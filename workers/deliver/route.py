"""Routing: which destinations want an event. A YAML file names them; `route()` picks, purely.

The file (its path comes from settings; without one, every event goes to the single Redis Stream
destination "redis", `default_destinations(url)`):

    destinations:
      - name: events                          # [A-Za-z0-9_.-]+, unique; part of the idempotency key
        url: redis://127.0.0.1:6379/0?stream=wavix:events&maxlen=100000
      - name: rabbit
        url: amqp://wavix:${RABBIT_PASSWORD}@mq.internal:5672/?exchange=wavix.events
        filter:
          types: ["wavix.call.*"]             # globs on the event type; absent = every wavix.call.* type
      - name: crm
        url: https://crm.example.com/hooks/wavix
        secret_env: CRM_WEBHOOK_SECRET        # or `secret: whsec_...` in the file; webhooks need one
        filter:
          types: [wavix.call.completed]
          disposition: [answered]             # lists match any of their values, case-insensitively
          answered_by: [human, unknown]       # "unknown" matches a null answered_by (or disposition)
          direction: [outbound]               # inbound, outbound, unknown
          min_duration_s: 10                  # bounds are inclusive
          max_duration_s: 3600
          country: [US, CA]                   # the caller's or the callee's country (ISO alpha-2)
          # accounts: [alpha, beta]           # the calls of these accounts only (ACCOUNTS_FILE's names)
        retry:                                # optional; default 5s, 5m, 30m, 2h, 5h, 10h, 10h (~28 h)
          schedule: [5s, 5m, 30m, 2h, 5h, 10h, 10h]   # waits after each failed try (workers/retry.py)
          max_age: 2d                         # with it, the last wait repeats until this age
        max_per_second: 5                     # optional: a delivery rate held across all workers
        disable_after: 2d                     # optional: paused after failing this long (30m, 2h, 5d; 0: never);
                                              #   default DESTINATION_DISABLE_AFTER (5 days)
        redact:                               # optional: what this destination may not see (contract/privacy.py)
          numbers: hash                       # keep (default), mask (+1********01), hash (hmac:<key id>:<hex>,
                                              #   needs REDACT_KEY)
          transcript: drop                    # keep (default), drop (no turns, no summary), redact (numbers and
                                              #   e-mail addresses in the text replaced: contract/scrub.py)
          recording_url: drop                 # keep (default), drop

`${VAR}` in a `url` is replaced from the environment mapping the loader is given (so passwords stay out
of the file); an unset variable is an error. A destination gets every event its filter does not exclude;
the fields of a filter must all match. Each of `types` must match an event type we publish (a misspelt type
would leave its destination with nothing, ever). A field the event does not carry (`disposition`, `answered_by`,
`duration_s` exist only on `wavix.call.completed`) does not match: a filter on them selects completed events.

The pipeline's own events (`wavix.ops.<incident>.opened` and `.resolved`, contract/ops.py) go only to destinations
whose `types` names them (`[wavix.ops.*]`, `[wavix.ops.destination_*]`, or `["*"]` for everything): an absent
`types` means every call event, so a destination made for calls (a CRM, the PostgreSQL tables) never receives an
incident unasked, and `wavix.call.erased` still reaches every destination that is not filtered. The filter's
other fields are about calls and do not apply to them, `accounts` included (an incident is the deployment's).

Everything is checked at load: unknown or repeated fields, types, duplicate names, the URL's scheme and
parameters, secrets. Errors name the file and line, e.g.
`sinks.yaml:12: destination "crm": filter: unknown field "dispositon" (did you mean "disposition"?)`.
Errors never repeat a URL or a secret.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import yaml

from contract import yamlfile
from contract.events import EVENT_CLASSES, CallEssentials, CloudEvent
from contract.ops import is_ops
from contract.privacy import KEEP, Redaction, RulesError, parse_rules
from contract.yamlfile import MISSING, Fields
from workers.deliver.sinks.base import SinkError, check_url, redact
from workers.retry import Schedule, parse_duration

NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DESTINATION_FIELDS = ("name", "url", "secret", "secret_env", "filter", "retry", "max_per_second", "redact",
                       "disable_after")
_LIST_FIELDS = ("types", "disposition", "answered_by", "direction", "country", "accounts")
_FILTER_FIELDS = (*_LIST_FIELDS, "min_duration_s", "max_duration_s")
_DIRECTIONS = frozenset({"inbound", "outbound", "unknown"})
EVENT_TYPES = tuple(str(kind.__struct_config__.tag) for kind in EVENT_CLASSES)  # what `types` can name
_KNOWN = (*(t for t in EVENT_TYPES if not is_ops(t)), "wavix.ops.<incident>.opened", "wavix.ops.<incident>.resolved")


class RouteError(ValueError):
    """The routing file is unusable; the message starts with `file:line:`."""


@dataclass(frozen=True)
class Filter:
    """What a destination wants; None (or empty `types`) means "any". Values are normalised at load."""

    types: tuple[str, ...] = ()
    disposition: frozenset[str] | None = None
    answered_by: frozenset[str] | None = None
    direction: frozenset[str] | None = None
    min_duration_s: Decimal | None = None
    max_duration_s: Decimal | None = None
    country: frozenset[str] | None = None
    accounts: frozenset[str] | None = None  # the envelope's `account` (contract/accounts.py)

    def matches(self, event: CloudEvent) -> bool:
        data = event.data
        if is_ops(event.type):  # the pipeline's own events go only where `types` names them, whatever else
            return any(fnmatch.fnmatchcase(event.type, glob) for glob in self.types)
        if self.types and not any(fnmatch.fnmatchcase(event.type, glob) for glob in self.types):
            return False
        if self.accounts is not None and event.account not in self.accounts:
            return False
        if not isinstance(data, CallEssentials):  # wavix.call.erased: no call data to filter on
            return self == Filter(types=self.types, accounts=self.accounts)
        if not _among(self.disposition, getattr(data, "disposition", MISSING)):
            return False
        if not _among(self.answered_by, getattr(data, "answered_by", MISSING)):
            return False
        if self.direction is not None and data.direction not in self.direction:
            return False
        if self.country is not None and not {data.from_.country, data.to.country} & self.country:
            return False
        return self._duration_fits(getattr(data, "duration_s", None))

    def _duration_fits(self, duration: Decimal | None) -> bool:
        if self.min_duration_s is None and self.max_duration_s is None:
            return True
        if duration is None:
            return False
        low_ok = self.min_duration_s is None or duration >= self.min_duration_s
        return low_ok and (self.max_duration_s is None or duration <= self.max_duration_s)


def _among(wanted: frozenset[str] | None, value: object) -> bool:
    """A list filter: None wants anything; an absent field never matches; null matches "unknown"."""
    if wanted is None:
        return True
    if value is MISSING:
        return False
    return (str(value).lower() if value is not None else "unknown") in wanted


@dataclass(frozen=True)
class Destination:
    """One configured sink: where (`url`, with `${VAR}`s replaced), its secret, and what it wants."""

    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    filter: Filter = Filter()
    line: int = 0  # where the file declares it (0: not from a file)
    retry: Schedule = field(default_factory=Schedule)
    max_per_second: float = 0.0  # 0: no limit
    redact: Redaction = KEEP  # the form its events take (contract/privacy.py), applied as each is sent
    disable_after_s: float | None = None  # auto-disable after failing this long; None: DESTINATION_DISABLE_AFTER

    def disables_after(self, default_s: float) -> float:
        """Seconds of failing before it is paused: its own `disable_after`, else `default_s` (0: never)."""
        return default_s if self.disable_after_s is None else self.disable_after_s

    @property
    def where(self) -> str:
        """The URL without credentials or query, fit for logs."""
        return redact(self.url)


def route(event: CloudEvent, destinations: Iterable[Destination]) -> list[Destination]:
    """The destinations that want `event`, in configuration order. Pure."""
    return [d for d in destinations if d.filter.matches(event)]


def default_destinations(url: str) -> tuple[Destination, ...]:
    """No routing file: every event to one Redis Stream destination named "redis"."""
    try:
        check_url(url)
    except SinkError as e:
        raise RouteError(f"default destination: {e}") from e
    return (Destination(name="redis", url=url),)


def load_destinations(
    path: str | Path | None, env: Mapping[str, str], *, default_url: str | None = None, hash_key: bool = True
) -> tuple[Destination, ...]:
    """The file's destinations; without a path, `default_destinations(default_url)`. `hash_key`: whether
    REDACT_KEY is set (a destination with `numbers: hash` is refused without it)."""
    if path is None or str(path) == "":
        if default_url is None:
            raise RouteError("no routing file and no default destination URL")
        return default_destinations(default_url)
    text, source = yamlfile.read(path, RouteError, "routing file")
    return parse_destinations(text, env, source=source, hash_key=hash_key)


def parse_destinations(text: str, env: Mapping[str, str], *, source: str = "sinks.yaml",
                       hash_key: bool = True) -> tuple[Destination, ...]:
    """Parses and checks the YAML `text`; errors start with `source:line:`."""
    return yamlfile.parse(text, source, RouteError,
                          lambda loader, root: _Reader(loader, source, env, hash_key=hash_key).document(root))


class _Reader(yamlfile.NodeReader):
    """Walks the YAML node tree (not the plain data) so every error can name its line."""

    def __init__(self, loader: yaml.SafeLoader, source: str, env: Mapping[str, str], *, hash_key: bool) -> None:
        super().__init__(loader, source, RouteError)
        self._env, self._hash_key = env, hash_key

    def document(self, root: yaml.Node | None) -> tuple[Destination, ...]:
        fields = self.mapping(root, "", ("destinations",))
        items = fields.get("destinations")
        if items is None or not isinstance(items[1], yaml.SequenceNode) or not items[1].value:
            raise self.fail(items[1] if items else root, "", '"destinations" must be a non-empty list')
        destinations = [self.destination(node) for node in items[1].value]
        seen: dict[str, Destination] = {}
        for d in destinations:
            if d.name in seen:
                problem = f"name already used on line {seen[d.name].line}"
                raise RouteError(f'{self._source}:{d.line}: destination "{d.name}": {problem}')
            seen[d.name] = d
        return tuple(destinations)

    def destination(self, node: yaml.Node) -> Destination:
        line = node.start_mark.line + 1
        where, fields, name = self.named(node, "destination", _DESTINATION_FIELDS)
        if not NAME.match(name):
            raise self.fail(fields["name"][1], where, "name may hold only letters, digits, '_', '.' and '-'")
        if "url" not in fields:
            raise self.fail(node, where, 'missing "url"')
        secret = self.secret(fields, where)
        url_node = fields["url"][1]
        url = self.interpolate(self.text(url_node, where, "url"), url_node, where)
        try:
            check_url(url, secret=secret)
        except SinkError as e:
            raise self.fail(url_node, where, f"url: {e}") from e
        rules = self.filter(fields["filter"][1], where) if "filter" in fields else Filter()
        schedule = self.schedule(fields["retry"][1], where) if "retry" in fields else Schedule()
        rate = self.rate(fields["max_per_second"][1], where) if "max_per_second" in fields else 0.0
        redaction = self.redaction(fields["redact"][1], where) if "redact" in fields else KEEP
        disable = self.duration(fields["disable_after"][1], where, "disable_after") if "disable_after" in fields \
            else None
        return Destination(name=name, url=url, secret=secret, filter=rules, line=line, retry=schedule,
                           max_per_second=rate, redact=redaction, disable_after_s=disable)

    def redaction(self, node: yaml.Node, where: str) -> Redaction:
        where = f"{where}redact: "
        fields = self.mapping(node, where, ("numbers", "transcript", "recording_url"))
        for name, (_, value) in fields.items():
            try:
                parse_rules({name: self.scalar(value)})
            except RulesError as e:
                raise self.fail(value, where, str(e)) from e
        rules = parse_rules({name: self.scalar(value) for name, (_, value) in fields.items()})
        if rules.needs_key and not self._hash_key:
            raise self.fail(fields["numbers"][1], where, "numbers: hash needs REDACT_KEY (16 characters or more)")
        return rules

    def schedule(self, node: yaml.Node, where: str) -> Schedule:
        where = f"{where}retry: "
        fields = self.mapping(node, where, ("schedule", "max_age"))
        try:
            waits = fields.get("schedule")
            items = waits[1].value if waits and isinstance(waits[1], yaml.SequenceNode) else None
            if waits and not items:
                raise ValueError('"schedule" must be a non-empty list of durations (5s, 5m, 2h, 1d)')
            delays = tuple(parse_duration(self.scalar(i)) for i in items) if items else Schedule().delays
            age = parse_duration(self.scalar(fields["max_age"][1])) if "max_age" in fields else None
            return Schedule(delays=delays, max_age=age)
        except ValueError as e:
            raise self.fail(node, where, str(e)) from e

    def duration(self, node: yaml.Node, where: str, name: str) -> float:
        value = self.scalar(node)
        try:
            if value is MISSING or isinstance(value, bool):
                raise ValueError("expected a duration (30m, 2h, 5d) or 0")
            return parse_duration(value)
        except ValueError as e:
            raise self.fail(node, where, f"{name}: {e}") from e

    def rate(self, node: yaml.Node, where: str) -> float:
        value = self.scalar(node)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(node, where, '"max_per_second" must be a number above 0')
        return float(value)

    def secret(self, fields: Fields, where: str) -> str | None:
        if "secret" in fields and "secret_env" in fields:
            raise self.fail(fields["secret_env"][0], where, 'give "secret" or "secret_env", not both')
        if "secret" in fields:
            return self.text(fields["secret"][1], where, "secret")
        if "secret_env" not in fields:
            return None
        node = fields["secret_env"][1]
        variable = self.text(node, where, "secret_env")
        value = self._env.get(variable, "").strip()
        if not value:
            raise self.fail(node, where, f"secret_env: environment variable {variable} is not set")
        return value

    def interpolate(self, url: str, node: yaml.Node, where: str) -> str:
        for variable in _VAR.findall(url):
            if not self._env.get(variable):
                raise self.fail(node, where, f"url: environment variable {variable} is not set")
        return _VAR.sub(lambda m: self._env[m.group(1)], url)

    def filter(self, node: yaml.Node, where: str) -> Filter:
        where = f"{where}filter: "
        fields = self.mapping(node, where, _FILTER_FIELDS)
        lists = {name: self.strings(fields[name][1], where, name) for name in _LIST_FIELDS if name in fields}
        if "types" in fields:
            self.known_types(fields["types"][1], where)
        bounds = {name: self.seconds(fields[name][1], where, name) for name in _FILTER_FIELDS[len(_LIST_FIELDS):]
                  if name in fields}
        low, high = bounds.get("min_duration_s"), bounds.get("max_duration_s")
        if low is not None and high is not None and low > high:
            raise self.fail(fields["max_duration_s"][1], where, "max_duration_s is below min_duration_s")
        direction = lists.get("direction")
        if direction is not None and not direction <= _DIRECTIONS:
            bad = ", ".join(sorted(direction - _DIRECTIONS))
            raise self.fail(fields["direction"][1], where, f"direction {bad}: use inbound, outbound or unknown")
        return Filter(
            types=tuple(sorted(lists.get("types", ()))), disposition=lists.get("disposition"),
            answered_by=lists.get("answered_by"), direction=direction, country=_upper(lists.get("country")),
            min_duration_s=low, max_duration_s=high, accounts=lists.get("accounts"),
        )

    def known_types(self, node: yaml.Node, where: str) -> None:
        """Refuses a type or glob that matches no event type, naming the closest one (difflib) or the known ones."""
        for item in node.value if isinstance(node, yaml.SequenceNode) else [node]:
            glob = str(self.scalar(item)).strip()
            if any(fnmatch.fnmatchcase(known, glob) for known in EVENT_TYPES):
                continue
            close = [] if any(c in glob for c in "*?[") else difflib.get_close_matches(glob, EVENT_TYPES, n=1)
            if close:
                raise self.fail(item, where, f'no event type is "{glob}" (did you mean "{close[0]}"?)')
            raise self.fail(item, where, f'no event type matches "{glob}" (known: {", ".join(_KNOWN)})')

    def strings(self, node: yaml.Node, where: str, name: str) -> frozenset[str]:
        """A list of non-empty strings (or one string), lower-cased except for `types` and `country`."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        values = [self.scalar(item) for item in items]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise self.fail(node, where, f'"{name}" must be a non-empty list of strings')
        keep_case = name in ("types", "country")
        return frozenset(v.strip() if keep_case else v.strip().lower() for v in values)

    def seconds(self, node: yaml.Node, where: str, name: str) -> Decimal:
        value = self.scalar(node)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(node, where, f'"{name}" must be a number of seconds, 0 or more')
        return Decimal(str(value))


def _upper(values: frozenset[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(v.upper() for v in values)
