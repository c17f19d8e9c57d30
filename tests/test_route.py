"""Routing: the YAML file (parsed, interpolated, checked with line numbers) and the pure `route()` choice."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from contract import events as ev
from tests.helpers.sinks import make_event
from workers.deliver import route as routing
from workers.deliver.route import Destination, Filter, RouteError, load_destinations, parse_destinations, route

ENV = {"RABBIT_PASSWORD": "s3cret-pw", "CRM_WEBHOOK_SECRET": "whsec_c2VjcmV0"}


def docstring_example() -> str:
    """The example in workers/deliver/route.py's docstring, so the documentation cannot drift from the parser."""
    doc = routing.__doc__ or ""
    start = doc.index("    destinations:")
    return textwrap.dedent(doc[start:doc.index("\n\n", start)])


def unavailable_event() -> ev.TranscriptionUnavailableEvent:
    data = ev.TranscriptionUnavailable(
        call_id="c-1", direction="inbound", from_=ev.Party("+14302287001", "US"), to=ev.Party(None, None),
        outcome="no_answer", reason="failed",
    )
    return ev.TranscriptionUnavailableEvent(
        id=ev.event_id("c-1", ev.UNAVAILABLE), subject="c-1", time=datetime(2026, 1, 1, tzinfo=UTC),
        dataschema=ev.dataschema_for(ev.TranscriptionUnavailable), data=data,
    )


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(RouteError) as caught:
        parse_destinations(textwrap.dedent(text), env or ENV)
    return str(caught.value)


def test_docstring_example_parses_with_env_secret_and_interpolated_url() -> None:
    """The documented example loads: three destinations in order, ${VAR} replaced, secret_env read, filters set."""
    events, rabbit, crm = parse_destinations(docstring_example(), ENV)
    assert [d.name for d in (events, rabbit, crm)] == ["events", "rabbit", "crm"]
    assert events.filter == Filter() and events.secret is None
    assert rabbit.url == "amqp://wavix:s3cret-pw@mq.internal:5672/?exchange=wavix.events"
    assert rabbit.filter.types == ("wavix.call.*",)
    assert crm.secret == "whsec_c2VjcmV0" and crm.line == 8
    assert crm.filter == Filter(
        types=("wavix.call.completed",), disposition=frozenset({"answered"}),
        answered_by=frozenset({"human", "unknown"}), direction=frozenset({"outbound"}),
        min_duration_s=Decimal(10), max_duration_s=Decimal(3600), country=frozenset({"US", "CA"}),
    )


def test_secrets_and_passwords_stay_out_of_repr() -> None:
    """A destination's repr (what ends up in logs and tracebacks) holds neither its secret nor its URL."""
    _, rabbit, crm = parse_destinations(docstring_example(), ENV)
    assert "s3cret-pw" not in repr(rabbit) and "c2VjcmV0" not in repr(crm)
    assert rabbit.where == "amqp://mq.internal:5672/"


def test_inline_secret_and_load_from_file(tmp_path: Path) -> None:
    """`secret:` in the file is used as is; `load_destinations` reads the path and names the file in errors."""
    path = tmp_path / "sinks.yaml"
    path.write_text("destinations:\n  - name: hook\n    url: https://h.example/x\n    secret: whsec_abc=\n")
    [hook] = load_destinations(path, {})
    assert hook.secret == "whsec_abc=" and hook.url == "https://h.example/x"
    path.write_text("destinations:\n  - name: hook\n    url: https://h.example/x\n")
    with pytest.raises(RouteError, match=r"^sinks\.yaml:3: destination \"hook\": url: .*needs a secret"):
        load_destinations(path, {})


def test_no_file_means_the_single_redis_destination() -> None:
    """Without a routing file every event goes to one destination named "redis" at the given URL."""
    url = "redis://127.0.0.1:6379/0?stream=wavix:events&maxlen=100000"
    [only] = load_destinations(None, {}, default_url=url)
    assert (only.name, only.url, only.filter) == ("redis", url, Filter())
    assert route(make_event(), [only]) == [only]
    with pytest.raises(RouteError):
        load_destinations(None, {})


@pytest.mark.parametrize(("text", "expected"), [
    ("destinations:\n  - name: crm\n    url: https://h/x\n    secret: s\n    filter:\n      dispositon: [busy]\n",
     'sinks.yaml:6: destination "crm": filter: unknown field "dispositon" (did you mean "disposition"?)'),
    ("destinations:\n  - name: a\n    url: redis://h/0?stream=s\n    colour: red\n",
     'sinks.yaml:4: destination "a": unknown field "colour"'),
    ("destinations:\n  - name: a\n    url: redis://h/0?stream=s\n  - name: a\n    url: redis://h/0?stream=t\n",
     'sinks.yaml:4: destination "a": name already used on line 2'),
    ("destinations:\n  - name: a\n    url: kafka://h:9092/t\n", 'sinks.yaml:3: destination "a": url: unknown scheme'),
    ("destinations:\n  - name: a\n    url: nats://h:4222/?stream=S\n",
     'sinks.yaml:3: destination "a": url: nats URL needs ?subject=...'),
    ("destinations:\n  - name: a\n    url: amqp://u:${NOPE}@h/?exchange=x\n",
     'sinks.yaml:3: destination "a": url: environment variable NOPE is not set'),
    ("destinations:\n  - name: a\n    url: https://h/x\n    secret_env: MISSING\n",
     'sinks.yaml:4: destination "a": secret_env: environment variable MISSING is not set'),
    ("destinations:\n  - name: a\n    url: https://h/x\n    secret: s\n    secret_env: CRM_WEBHOOK_SECRET\n",
     'sinks.yaml:5: destination "a": give "secret" or "secret_env", not both'),
    ("destinations:\n  - name: a\n    url: redis://h/0?stream=s\n    filter:\n      direction: [sideways]\n",
     'sinks.yaml:5: destination "a": filter: direction sideways: use inbound, outbound or unknown'),
    ("destinations:\n  - name: a\n    url: redis://h/0?stream=s\n    filter: {min_duration_s: 9, max_duration_s: 3}\n",
     'sinks.yaml:4: destination "a": filter: max_duration_s is below min_duration_s'),
    ("destinations:\n  - name: a\n    url: redis://h/0?stream=s\n    filter:\n      min_duration_s: soon\n",
     'sinks.yaml:5: destination "a": filter: "min_duration_s" must be a number'),
    ("destinations:\n  - name: a b\n    url: redis://h/0?stream=s\n", 'sinks.yaml:2: destination "a b": name may hold'),
    ("destinations:\n  - url: redis://h/0?stream=s\n", 'sinks.yaml:2: destination on line 2: missing "name"'),
    ("destinations:\n  - name: a\n    name: b\n    url: redis://h/0?stream=s\n",
     'sinks.yaml:3: destination "a": field "name" given twice'),
    ("destinations: []\n", 'sinks.yaml:1: "destinations" must be a non-empty list'),
    ("routes:\n  - name: a\n", 'sinks.yaml:1: unknown field "routes"'),
    ("destinations:\n  - name: a\n    url: [unclosed\n", "sinks.yaml:4: not valid YAML"),
])
def test_validation_errors_name_file_line_and_destination(text: str, expected: str) -> None:
    """Every mistake is refused at load with `file:line: destination "name": problem`."""
    assert error_of(text).startswith(expected)


def test_errors_never_echo_the_url_or_secret() -> None:
    """A bad URL's error names the problem, not the URL (it may carry a password or token)."""
    message = error_of("destinations:\n  - name: a\n    url: amqp://u:hunter2@h/?exchnage=x\n")
    assert "hunter2" not in message and "exchange" in message


@pytest.mark.parametrize(("rule", "yes", "no"), [
    (Filter(types=("wavix.call.*",)), {}, None),
    (Filter(types=("wavix.call.transcribed",)), None, {}),
    (Filter(disposition=frozenset({"answered", "busy"})), {"disposition": "busy"}, {"disposition": "failed"}),
    (Filter(disposition=frozenset({"unknown"})), {"disposition": None}, {"disposition": "answered"}),
    (Filter(answered_by=frozenset({"human"})), {"answered_by": "human"}, {"answered_by": "machine"}),
    (Filter(answered_by=frozenset({"machine"})), {"answered_by": "Machine"}, {"answered_by": None}),
    (Filter(direction=frozenset({"inbound"})), {"direction": "inbound"}, {"direction": "outbound"}),
    (Filter(min_duration_s=Decimal(10)), {"duration_s": Decimal(10)}, {"duration_s": Decimal("9.9")}),
    (Filter(max_duration_s=Decimal(60)), {"duration_s": Decimal(60)}, {"duration_s": Decimal(61)}),
    (Filter(min_duration_s=Decimal(0)), {"duration_s": Decimal(0)}, {"duration_s": None}),
    (Filter(country=frozenset({"FR"})), {"to": ev.Party("+33170363950", "FR")}, {"to": ev.Party("+1", "CA")}),
    (Filter(country=frozenset({"US"})), {"from_": ev.Party("+14302287001", "US")}, {"from_": ev.Party(None, None)}),
])
def test_each_filter_field_selects_and_excludes(rule: Filter, yes: dict | None, no: dict | None) -> None:
    """Each filter field admits an event with a wanted value and refuses one without it."""
    target = Destination(name="d", url="redis://h/0?stream=s", filter=rule)
    if yes is not None:
        assert route(make_event(**yes), [target]) == [target]
    if no is not None:
        assert route(make_event(**no), [target]) == []


def test_call_fields_an_event_does_not_carry_do_not_match() -> None:
    """disposition/answered_by/duration exist only on completed events: a filter on them skips the others."""
    event = unavailable_event()
    for rule in (Filter(disposition=frozenset({"unknown"})), Filter(answered_by=frozenset({"unknown"})),
                 Filter(min_duration_s=Decimal(0))):
        assert route(event, [Destination(name="d", url="redis://h/0?stream=s", filter=rule)]) == []
    by_direction = Destination(name="d", url="redis://h/0?stream=s", filter=Filter(direction=frozenset({"inbound"})))
    assert route(event, [by_direction]) == [by_direction]


def test_route_keeps_configuration_order_and_needs_every_field_to_match() -> None:
    """route() returns the wanting destinations in file order; a filter is an AND of its fields."""
    events, rabbit, crm = parse_destinations(docstring_example(), ENV)
    long_human = make_event(duration_s=Decimal(120), to=ev.Party("+14165550100", "CA"))
    assert route(long_human, [crm, rabbit, events]) == [crm, rabbit, events]
    abroad = make_event(duration_s=Decimal(120), from_=ev.Party("+442071838750", "GB"))  # GB -> FR: no US/CA
    assert route(abroad, [events, rabbit, crm]) == [events, rabbit]
    assert route(make_event(duration_s=Decimal(5)), [events, rabbit, crm]) == [events, rabbit]
    assert route(unavailable_event(), [events, rabbit, crm]) == [events, rabbit]


@pytest.mark.parametrize(("types", "expected"), [
    ("[wavix.call.completd]",
     'sinks.yaml:5: destination "crm": filter: no event type is "wavix.call.completd" '
     '(did you mean "wavix.call.completed"?)'),
    ('["wavix.calls.*"]', 'sinks.yaml:5: destination "crm": filter: no event type matches "wavix.calls.*" (known: '
                         'wavix.call.completed, wavix.call.transcribed, wavix.call.transcription_unavailable, '
                         'wavix.call.erased, wavix.ops.<incident>.opened, wavix.ops.<incident>.resolved)'),
])
def test_a_type_that_names_no_event_is_refused_with_a_suggestion(types: str, expected: str) -> None:
    """`types: [wavix.call.completd]` would leave its destination with nothing, ever: refused at load, with the
    closest known type (or, for a glob matching none, the known ones); globs that match a type load."""
    head = "destinations:\n  - name: crm\n    url: redis://h/0?stream=s\n    filter:\n      types: "
    assert error_of(head + types + "\n") == expected
    [crm] = parse_destinations(head + '["wavix.call.*", "*.completed", wavix.call.transcribed]\n', ENV)
    assert crm.filter.types == ("*.completed", "wavix.call.*", "wavix.call.transcribed")
