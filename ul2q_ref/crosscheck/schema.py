"""Validate ``vectors.json`` and results files against the JSON Schemas shipped beside this
module (``vectors.schema.json``, ``results.schema.json``).

The checker reads vectors written by anyone, so it validates them first: a tampered file
(``"shape": [-1]``, a code that is not an integer, a missing field) is a one-line error
naming the file and the JSON path, not a crash or, worse, a silently different check.

The validator is the ``jsonschema`` package (draft 2020-12), an optional dependency of the
checker: ``pip install 'ul2q-ref[check]'``. Without it, :func:`validate` raises
:class:`ValidatorMissingError`, one line saying what to install.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("vectors.schema.json")
"""The JSON Schema (draft 2020-12) of ``vectors.json``; also ``ul2q_ref.crosscheck.SCHEMA_PATH``."""

RESULTS_SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
"""The JSON Schema (draft 2020-12) of a results file (``ul2q-ref check --results``); also
``ul2q_ref.crosscheck.RESULTS_SCHEMA_PATH``."""

INSTALL_HINT = "pip install 'ul2q-ref[check]' (or pip install jsonschema)"
"""What to install for validation."""

_MESSAGE_LIMIT = 300
"""The longest message of one violation (a violation quotes the offending value)."""


class SchemaError(ValueError):
    """The document does not follow the schema; the message gives the JSON path."""


class ValidatorMissingError(ImportError):
    """The ``jsonschema`` package, which validates the vectors, is not installed."""


@lru_cache(maxsize=1)
def vectors_schema() -> dict[str, Any]:
    """The shipped schema of ``vectors.json``."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The shipped schema of a results file (``ul2q-ref check --results FILE``)."""
    schema: dict[str, Any] = json.loads(RESULTS_SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=4)
def _validator(schema_text: str) -> Any:
    """A draft 2020-12 validator of the schema serialised as `schema_text`."""
    try:
        import jsonschema
    except ImportError:
        raise ValidatorMissingError(
            f"validating conformance vectors needs the jsonschema package: {INSTALL_HINT}"
        ) from None
    schema = json.loads(schema_text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _line(error: Any) -> str:
    """One violation as ``"$.path: what is wrong"``, on one line and at most 300 characters."""
    text = f"{error.json_path}: {error.message}".replace("\n", " ")
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT - 3] + "..."


def errors(document: Any, schema: dict[str, Any] | None = None) -> Iterator[str]:
    """Every violation of `schema` (default: the vectors schema) in `document`, as
    ``"$.path: what is wrong"`` lines."""
    validator = _validator(json.dumps(vectors_schema() if schema is None else schema,
                                      sort_keys=True))
    for error in validator.iter_errors(document):
        yield _line(error)


def validate(document: Any, schema: dict[str, Any] | None = None) -> None:
    """Raise :class:`SchemaError` with the most relevant violation, if any.

    Raises
    ------
    SchemaError
        `document` does not follow `schema` (default: the vectors schema).
    ValidatorMissingError
        The ``jsonschema`` package is not installed.
    """
    validator = _validator(json.dumps(vectors_schema() if schema is None else schema,
                                      sort_keys=True))
    from jsonschema.exceptions import best_match  # present: _validator imported jsonschema

    error = best_match(validator.iter_errors(document))
    if error is not None:
        raise SchemaError(_line(error))


def validate_results(document: Any) -> None:
    """Raise :class:`SchemaError` if `document` is not a results file's content.

    The schema checks the structure (ids, hex patterns, integer codes); the lengths and the
    values are checked per case by the checker, against the case.
    """
    validate(document, results_schema())


__all__ = [
    "INSTALL_HINT",
    "RESULTS_SCHEMA_PATH",
    "SCHEMA_PATH",
    "SchemaError",
    "ValidatorMissingError",
    "errors",
    "results_schema",
    "validate",
    "validate_results",
    "vectors_schema",
]
