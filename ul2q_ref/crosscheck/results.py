"""Reading an implementation's results: files, output streams, and ``.npy`` data sizes.

Everything here is bounded before it is parsed: a results file by its size, a command's
output line by :data:`MAX_LINE_BYTES` (read in chunks; a longer line is skipped without being
held in memory), a ``.npy`` data file by the shape its case declares (header read, size
compared, before any data is read or hashed).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import CheckError
from .schema import INSTALL_HINT, SchemaError, ValidatorMissingError, validate_results
from .vectors import RESULTS_FORMAT, RESULTS_SCHEMA_VERSION

MAX_RESULTS_BYTES = 1 << 30
"""The largest results file :func:`load_results` reads."""

MAX_LINE_BYTES = 16 << 20
"""The longest result line a command may write (16 MiB; the largest case needs about 0.1 MiB)."""

_CHUNK = 1 << 16
_ID_PREFIX = re.compile(rb'\s*\{\s*"id"\s*:\s*"([A-Za-z0-9][A-Za-z0-9._-]{0,199})"')


def parse_json(text: str) -> Any:
    """``json.loads`` whose every failure is a ValueError with one line.

    Catches what ``json.loads`` raises besides JSONDecodeError on hostile text: a
    RecursionError on very deep nesting, a ValueError on integers of more than 4300 digits.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error})") from None
    except ValueError as error:  # e.g. "Exceeds the limit (4300 digits) for integer string"
        raise ValueError(f"not acceptable JSON ({str(error).splitlines()[0]})") from None


def load_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a results file into {case id: result}.

    The document is validated against ``results.schema.json`` (its structure: ids, hex
    patterns, integer codes) before any result is used; lengths and values are checked per
    case by the checker.

    Raises
    ------
    CheckError
        One line naming the file: unreadable, not JSON, not following the schema, or the
        ``jsonschema`` package (which validates it) is not installed.
    """
    file = Path(path)
    try:
        if not file.is_file():
            raise CheckError(f"{path}: no such file" if not file.exists()
                             else f"{path}: not a regular file")
        if file.stat().st_size > MAX_RESULTS_BYTES:
            raise CheckError(f"{path}: larger than {MAX_RESULTS_BYTES} bytes")
        document = parse_json(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckError(f"{path}: not a readable JSON file ({error})") from None
    if isinstance(document, dict):  # said plainly before the schema's general message
        if document.get("format", RESULTS_FORMAT) != RESULTS_FORMAT:
            raise CheckError(f"{path}: format is {repr(document.get('format'))[:80]}, "
                             f"expected {RESULTS_FORMAT!r}")
        version = document.get("schema_version", RESULTS_SCHEMA_VERSION)
        if version != RESULTS_SCHEMA_VERSION:
            raise CheckError(f"{path}: results schema version {repr(version)[:40]} is not "
                             "supported")
    _validate(document, path)
    records = document["results"] if isinstance(document, dict) else document
    return {record["id"]: record for record in records}


def _validate(document: Any, path: str | os.PathLike[str]) -> None:
    """Refuse a results document that does not follow ``results.schema.json``, in one line."""
    try:
        validate_results(document)
    except SchemaError as error:
        raise CheckError(f"{path}: does not follow results.schema.json: {error}") from None
    except ValidatorMissingError:
        raise CheckError(f"{path}: validating a results file needs the jsonschema package: "
                         f"{INSTALL_HINT}") from None


# --------------------------------------------------------------------------- missing results


class NoResult(dict):  # type: ignore[type-arg]
    """The record the checker puts in place of a result the implementation did not give.

    ``{"id": …, "error": why}`` like an implementation's error record, so code that reads
    results keeps working, but told apart by its type: the command timed out, was not run,
    exited with an error or wrote unusable output — the checker says so instead of "the
    implementation reported an error".
    """


def no_result(case_id: str, why: str) -> NoResult:
    """The record for case `case_id` that got no usable result, and `why`."""
    return NoResult(id=case_id, error=why)


# --------------------------------------------------------------------------- output lines


@dataclass
class Line:
    """One line of a command's output: its text, or why it was not kept.

    ``text`` is None for a line longer than the cap (``length`` bytes, so far as read) or
    not UTF-8; ``problem`` then says which, and ``case_id`` is the id its first bytes name,
    if they do (``{"id": "…"`` at the start).
    """

    number: int
    text: str | None
    problem: str | None = None
    case_id: str | None = None


def read_lines(stream: IO[bytes], max_line: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """The non-blank lines of `stream`, read in chunks; memory stays below `max_line` + 64 KiB.

    A line longer than `max_line` bytes is skipped to its end without being kept (only its
    first 256 bytes, to find its ``id``) and yielded with ``text=None`` and the problem.
    """
    number = 0
    pending = bytearray()
    skipping = False
    skipped = 0
    head = b""
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            start = len(chunk) if end < 0 else end + 1
            if skipping:
                skipped += len(piece)
            elif len(pending) + len(piece) > max_line:
                skipping, skipped = True, len(pending) + len(piece)
                head = bytes(pending[:256]) + piece[:max(256 - len(pending), 0)]
                pending = bytearray()
            else:
                pending += piece
            if end >= 0:
                number += 1
                if skipping:
                    yield _too_long(number, head, skipped, max_line)
                    skipping, skipped = False, 0
                elif pending.strip():
                    yield _decoded(number, bytes(pending))
                pending = bytearray()
    if skipping:
        yield _too_long(number + 1, head, skipped, max_line)
    elif pending.strip():
        yield _decoded(number + 1, bytes(pending))


def _too_long(number: int, head: bytes, length: int, cap: int) -> Line:
    match = _ID_PREFIX.match(head)
    return Line(number, None, f"result line {number} is longer than the cap of {cap} bytes "
                              f"(at least {length}): not parsed",
                match.group(1).decode("ascii") if match else None)


def _decoded(number: int, content: bytes) -> Line:
    try:
        return Line(number, content.decode("utf-8"))
    except UnicodeDecodeError as error:
        match = _ID_PREFIX.match(content)
        return Line(number, None, f"stdout is not UTF-8 ({error.reason} at byte "
                                  f"{error.start} of line {number})",
                    match.group(1).decode("ascii") if match else None)


def parse_record(line: Line) -> dict[str, Any]:
    """The JSON object on `line`; ValueError (one line) if it is not one."""
    if line.text is None:
        raise ValueError(line.problem or "unreadable line")
    record = parse_json(line.text)
    if not isinstance(record, dict):
        raise ValueError(f"the result is not a JSON object: {line.text[:80]!r}")
    return record


__all__ = [
    "MAX_LINE_BYTES",
    "MAX_RESULTS_BYTES",
    "Line",
    "NoResult",
    "load_results",
    "no_result",
    "parse_json",
    "parse_record",
    "read_lines",
]
