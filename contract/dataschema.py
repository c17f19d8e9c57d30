"""The committed JSON Schema documents of event data (docs/schema/): one shape for every family of events.

A family (the call events of contract/events.py, the ops events of contract/ops.py) is one document whose
`$defs` hold each data type (the target of its events' `dataschema` pointer) and whose top level accepts any
of them; its text is sorted and ends with a newline, so a regenerated file diffs only where a type changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgspec


def document(types: Iterable[Any], *, schema_id: str, title: str, description: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of `types`, generated from their Structs."""
    refs, defs = msgspec.json.schema_components(tuple(types), ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": title,
        "description": description,
        "anyOf": list(refs),
        "$defs": defs,
    }


def text(schema: dict[str, Any]) -> str:
    """`schema` as the text committed in its file (stable key order, final newline)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
