"""The operators' YAML files (ACCOUNTS_FILE, SINKS_CONFIG): read, parsed and walked so that every error is one
line naming the file and the line (`sinks.yaml:12: destination "crm": ...`), never a traceback.

The files are walked as YAML nodes, not as the plain data `yaml.safe_load` gives, because only nodes know their
line. Each file's own reader (contract/accounts.py, workers/deliver/route.py) is a `NodeReader` that knows its
fields; this module holds what the two share: reading the file, parsing it, and the node helpers.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

MISSING: Any = object()  # a node that is not a scalar, or a field that is absent
Fields = dict[str, tuple[yaml.Node, yaml.Node]]  # field name -> (key node, value node), for line numbers
T = TypeVar("T")


def read(path: str | Path, error: type[ValueError], what: str) -> tuple[str, str]:
    """The file's text and its name; `error` (one line) when it cannot be read."""
    source = Path(path)
    try:
        return source.read_text(encoding="utf-8"), source.name
    except OSError as e:
        raise error(f"{source}: cannot read the {what} ({e.strerror})") from e


def parse(text: str, source: str, error: type[ValueError],
          walk: Callable[[yaml.SafeLoader, yaml.Node | None], T]) -> T:
    """`walk(loader, root node)` over the YAML `text`; YAML that does not parse is `error` naming its line."""
    loader = yaml.SafeLoader(text)
    try:
        return walk(loader, loader.get_single_node())
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 1
        raise error(f"{source}:{line}: not valid YAML ({e.problem})") from e
    finally:
        loader.dispose()


class NodeReader:
    """Walks a file's nodes; every refusal is `error` starting with `source:line:`."""

    def __init__(self, loader: yaml.SafeLoader, source: str, error: type[ValueError]) -> None:
        self._loader, self._source, self._error = loader, source, error

    def fail(self, node: yaml.Node | None, where: str, problem: str) -> ValueError:
        line = node.start_mark.line + 1 if node is not None else 1
        return self._error(f"{self._source}:{line}: {where}{problem}")

    def scalar(self, node: yaml.Node) -> Any:
        return self._loader.construct_object(node, deep=True) if isinstance(node, yaml.ScalarNode) else MISSING

    def mapping(self, node: yaml.Node | None, where: str, known: Sequence[str]) -> Fields:
        """{key: (key node, value node)}, refusing non-mappings, unknown and repeated keys."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, "expected a mapping of fields")
        fields: Fields = {}
        for key_node, value_node in node.value:
            key = str(self.scalar(key_node))
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else f" (known: {', '.join(known)})"
                raise self.fail(key_node, where, f'unknown field "{key}"{hint}')
            if key in fields:
                raise self.fail(key_node, where, f'field "{key}" given twice')
            fields[key] = (key_node, value_node)
        return fields

    def named(self, node: yaml.Node, kind: str, known: Sequence[str]) -> tuple[str, Fields, str]:
        """One entry of the file's list (`kind`: "account", "destination"): what its errors start with (its name,
        else its line), its fields, its name."""
        line = node.start_mark.line + 1
        named = [v for k, v in node.value if self.scalar(k) == "name"] if isinstance(node, yaml.MappingNode) else []
        where = f'{kind} "{self.scalar(named[0])}": ' if named else f"{kind} on line {line}: "
        fields = self.mapping(node, where, known)
        if "name" not in fields:
            raise self.fail(node, where, 'missing "name"')
        return where, fields, self.text(fields["name"][1], where, "name")

    def text(self, node: yaml.Node, where: str, name: str) -> str:
        value = self.scalar(node)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, where, f'"{name}" must be a non-empty string')
        return value.strip()
