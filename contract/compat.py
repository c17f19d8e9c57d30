"""Schema compatibility: can the consumers of a released data schema take what the code publishes now?

`breaking_changes(released, current)` compares two JSON Schema documents shaped like
`contract.events.data_schema()` (definitions under `$defs`, the top level an `anyOf` of `$ref`s) and lists
every change that breaks a consumer, one line each, path first. An empty list means compatible. The rules
(docs/events.md says the same, for the people who read it):

    compatible                                        breaking (a new major version, published side by side)
    a new optional property (it has a default)        a property removed (a rename is a removal plus an addition)
    a new value of a multi-valued enum (enums open)   a property newly required, or no longer required
    a new data type (a new event type)                a type narrowed (a value kind no longer allowed)
    descriptions, titles, defaults                    a type widened (e.g. null where there never was one)
                                                      an enum value removed; a one-valued enum (a constant) changed
                                                      a constraint changed (pattern, format, bounds, lengths)
                                                      a data type or `$ref` target removed or renamed

Two directions are checked because events outlive the code that published them: new events must be readable
by consumers written for the released schema (no removal, no widening), and events already in streams,
queues and dead letters must stay valid under the current schema (no narrowing, no new requirement).
An enum with several values is open: consumers must expect values they do not know (the documented rule).
One with a single value (`currency: USD`) is a constant that consumers may rely on.

    python -m contract.compat docs/schema/released/wavix.call.v1.json   # against the code's current schema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

CONSTRAINTS = ("pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
               "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties")


def breaking_changes(released: Schema, current: Schema) -> list[str]:
    """Every change from `released` to `current` that breaks a consumer; [] when compatible."""
    problems: list[str] = []
    old_refs = {b.get("$ref") for b in released.get("anyOf", [])}
    new_refs = {b.get("$ref") for b in current.get("anyOf", [])}
    problems += [f"(top level): data type {ref} removed" for ref in sorted(old_refs - new_refs, key=str)]
    old_defs, new_defs = released.get("$defs", {}), current.get("$defs", {})
    for name, old in old_defs.items():
        if name not in new_defs:
            problems.append(f"{name}: definition removed")
        else:
            _compare(old, new_defs[name], name, problems)
    return problems


def _branches(schema: Schema) -> dict[tuple[str, ...], Schema]:
    """The alternatives a schema allows, keyed by kind: ("ref", target), ("value",), ("type", name), ("any",)."""
    for union in ("anyOf", "oneOf"):
        if union in schema:
            out: dict[tuple[str, ...], Schema] = {}
            for branch in schema[union]:
                out.update(_branches(branch))
            return out
    if "$ref" in schema:
        return {("ref", schema["$ref"]): schema}
    if "enum" in schema or "const" in schema:
        return {("value",): schema}
    kinds = schema.get("type")
    if kinds is None:
        return {("any",): schema}
    names = kinds if isinstance(kinds, list) else [kinds]
    return {("type", name): {**schema, "type": name} for name in names}


def _label(kind: tuple[str, ...]) -> str:
    return {"value": "its enumerated values", "any": "any value"}.get(kind[0], kind[-1])


def _compare(old: Schema, new: Schema, path: str, problems: list[str]) -> None:
    old_branches, new_branches = _branches(old), _branches(new)
    if ("any",) in new_branches and ("any",) not in old_branches:
        problems.append(f"{path}: type widened: now allows any value")
        return
    if ("any",) in old_branches and ("any",) not in new_branches:
        problems.append(f"{path}: type narrowed: no longer allows any value")
        return
    for kind in old_branches.keys() - new_branches.keys():
        problems.append(f"{path}: type narrowed: no longer allows {_label(kind)}")
    for kind in new_branches.keys() - old_branches.keys():
        problems.append(f"{path}: type widened: now allows {_label(kind)}")
    for kind in old_branches.keys() & new_branches.keys():
        _compare_branch(old_branches[kind], new_branches[kind], path, problems)


def _values(schema: Schema) -> list[Any]:
    return list(schema["enum"]) if "enum" in schema else [schema["const"]]


def _compare_branch(old: Schema, new: Schema, path: str, problems: list[str]) -> None:
    if "enum" in old or "const" in old:
        before, after = _values(old), _values(new)
        if len(before) == 1 and after != before:
            problems.append(f"{path}: const changed: {before[0]!r} -> {', '.join(map(repr, after))}")
        removed = [v for v in before if v not in after]
        if removed and len(before) > 1:
            problems.append(f"{path}: enum value(s) removed: {', '.join(map(repr, removed))}")
    for keyword in CONSTRAINTS:
        if old.get(keyword) != new.get(keyword):
            problems.append(f"{path}: constraint {keyword} changed: {old.get(keyword)!r} -> {new.get(keyword)!r}")
    if "items" in old or "items" in new:
        _compare(old.get("items", {}), new.get("items", {}), f"{path}[]", problems)
    old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
    if isinstance(old_extra, dict) and isinstance(new_extra, dict):
        _compare(old_extra, new_extra, f"{path}{{*}}", problems)
    elif old_extra != new_extra:
        problems.append(f"{path}: additionalProperties changed: {old_extra!r} -> {new_extra!r}")
    _compare_properties(old, new, path, problems)


def _compare_properties(old: Schema, new: Schema, path: str, problems: list[str]) -> None:
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name, schema in old_props.items():
        if name not in new_props:
            problems.append(f"{path}.{name}: property removed")
            continue
        if name in new_required and name not in old_required:
            problems.append(f"{path}.{name}: property now required")
        if name in old_required and name not in new_required:
            problems.append(f"{path}.{name}: property no longer required")
        _compare(schema, new_props[name], f"{path}.{name}", problems)
    for name in new_props.keys() - old_props.keys():
        if name in new_required:
            problems.append(f"{path}.{name}: new property is required (give it a default)")


def main(argv: list[str]) -> int:
    """`python -m contract.compat RELEASED [CURRENT]`: prints the breaking changes; exit 1 if there are any."""
    from contract.events import data_schema  # here, so the checker itself depends on nothing of ours

    if len(argv) not in (1, 2):
        print("usage: python -m contract.compat RELEASED.json [CURRENT.json]", file=sys.stderr)
        return 2
    released = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    current = json.loads(Path(argv[1]).read_text(encoding="utf-8")) if len(argv) == 2 else data_schema()
    problems = breaking_changes(released, current)
    print("\n".join(problems) if problems else "compatible")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
