"""Validate ``vectors.json`` against the JSON schema shipped beside this module.

The checker reads vectors written by anyone, so it validates them first: a tampered file
(``"shape": [-1]``, a code that is not an integer, a missing field) is a one-line error
naming the file and the JSON path, not a crash or, worse, a silently different check.

This is a small validator for the part of JSON Schema (draft 2020-12) that
``vectors.schema.json`` uses: ``type``, ``const``, ``enum``, ``required``, ``properties``,
``additionalProperties``, ``items``, ``minItems``, ``maxItems``, ``uniqueItems``,
``minimum``, ``maximum``, ``pattern``, ``$ref`` to ``#/$defs/…``, ``oneOf``, ``allOf`` and
``if``/``then``/``else``. It needs no third-party package; the tests compare its verdicts
with the ``jsonschema`` package's. A keyword outside this list is an error, so the schema
cannot silently grow beyond what is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("vectors.schema.json")

_ANNOTATIONS = {"$schema", "$id", "title", "description"}
_KEYWORDS = {"type", "const", "enum", "required", "properties", "additionalProperties",
             "items", "minItems", "maxItems", "uniqueItems", "minimum", "maximum", "pattern",
             "$ref", "oneOf", "allOf", "if", "then", "else", "$defs"} | _ANNOTATIONS

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class SchemaError(ValueError):
    """The document does not follow the schema; the message gives the JSON path."""


@lru_cache(maxsize=1)
def vectors_schema() -> dict[str, Any]:
    """The shipped schema of ``vectors.json``."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 and 1.0 are equal, True and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b)


def errors(document: Any, schema: dict[str, Any] | None = None) -> Iterator[str]:
    """Every violation of `schema` (default: the vectors schema) in `document`, as
    ``"$.path: what is wrong"`` lines, depth first."""
    root = vectors_schema() if schema is None else schema
    yield from _errors(document, root, root, "$")


def validate(document: Any, schema: dict[str, Any] | None = None) -> None:
    """Raise :class:`SchemaError` with the first violation, if any."""
    for problem in errors(document, schema):
        raise SchemaError(problem)


def _resolve(root: dict[str, Any], reference: str) -> dict[str, Any]:
    if not reference.startswith("#/"):
        raise SchemaError(f"unsupported $ref {reference!r}")
    node: Any = root
    for part in reference[2:].split("/"):
        node = node[part]
    return node


def _errors(value: Any, schema: Any, root: dict[str, Any], path: str) -> Iterator[str]:
    if schema is True:
        return
    if schema is False:
        yield f"{path}: not allowed"
        return
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise SchemaError(f"schema keyword(s) {sorted(unknown)} are not supported")
    if "$ref" in schema:
        yield from _errors(value, _resolve(root, schema["$ref"]), root, path)
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[name](value) for name in names):
            yield f"{path}: expected {' or '.join(names)}, got {_show(value)}"
            return
    if "const" in schema and not _equal(value, schema["const"]):
        yield f"{path}: must be {json.dumps(schema['const'])}, got {_show(value)}"
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        yield f"{path}: must be one of {json.dumps(schema['enum'])}, got {_show(value)}"
    if isinstance(value, dict):
        yield from _object_errors(value, schema, root, path)
    if isinstance(value, list):
        yield from _array_errors(value, schema, root, path)
    if isinstance(value, str) and "pattern" in schema and \
            re.search(schema["pattern"], value) is None:
        yield f"{path}: {_show(value)} does not match {schema['pattern']}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{path}: {value} is less than the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{path}: {value} is more than the maximum {schema['maximum']}"
    if "oneOf" in schema:
        matching = [option for option in schema["oneOf"]
                    if next(_errors(value, option, root, path), None) is None]
        if len(matching) != 1:
            yield (f"{path}: matches {len(matching)} of the {len(schema['oneOf'])} allowed "
                   f"forms (expected exactly one); got {_show(value)}")
    for option in schema.get("allOf", ()):
        yield from _errors(value, option, root, path)
    if "if" in schema:
        holds = next(_errors(value, schema["if"], root, path), None) is None
        branch = schema.get("then" if holds else "else")
        if branch is not None:
            yield from _errors(value, branch, root, path)


def _object_errors(value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any],
                   path: str) -> Iterator[str]:
    for name in schema.get("required", ()):
        if name not in value:
            yield f"{path}: missing required field {name!r}"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        where = f"{path}.{name}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) \
            else f"{path}[{json.dumps(name)}]"
        if name in properties:
            yield from _errors(item, properties[name], root, where)
        elif extra is False:
            yield f"{path}: unexpected field {name[:60]!r}"
        elif isinstance(extra, dict):
            yield from _errors(item, extra, root, where)


def _array_errors(value: list[Any], schema: dict[str, Any], root: dict[str, Any],
                  path: str) -> Iterator[str]:
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield f"{path}: {len(value)} items, fewer than {schema['minItems']}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield f"{path}: {len(value)} items, more than {schema['maxItems']}"
    if schema.get("uniqueItems"):
        seen: list[str] = []
        for item in value:
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                yield f"{path}: items are not unique ({key[:60]} repeats)"
                break
            seen.append(key)
    if "items" in schema:
        for index, item in enumerate(value):
            yield from _errors(item, schema["items"], root, f"{path}[{index}]")


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
