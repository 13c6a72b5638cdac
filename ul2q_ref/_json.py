"""The one bounded JSON reader: size and nesting depth checked before parsing.

Python's ``json`` recurses once per ``[`` or ``{``, so 100,000 of them end in a
RecursionError, and it reads a file of any size into memory. :func:`loads_bounded` refuses a
text longer than `max_bytes` or nested deeper than `max_depth` with one
:class:`JSONLimitError` line naming the source, before ``json.loads`` sees it; the depth is
counted without recursion, brackets inside strings excluded. :func:`read_json` does the same
for a file, reading at most ``max_bytes + 1`` bytes of it.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects accepted (plans use 3, safetensors headers 3)."""

MAX_BYTES = 64 << 20
"""The longest JSON document read by default (64 MiB)."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class JSONLimitError(ValueError):
    """JSON that cannot be read safely: too large, too deep or malformed (one line)."""


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text `data`, strings excluded (no recursion)."""
    bare = _STRING.sub(b'""', data)
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(codes, (ord("]"), ord("}"))).astype(np.int64))
    return int(np.cumsum(steps).max(initial=0))


def loads_bounded(data: bytes | str, source: str, *, max_depth: int = MAX_DEPTH,
                  max_bytes: int = MAX_BYTES) -> Any:
    """Parse JSON `data` after checking its size and depth; errors name `source`.

    Raises
    ------
    JSONLimitError
        If `data` is longer than `max_bytes`, nested deeper than `max_depth`, not UTF-8, or
        not valid JSON (also for numbers Python refuses, such as 5,000-digit integers).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise JSONLimitError(f"{source}: JSON of {len(raw)} bytes is longer than the limit of "
                             f"{max_bytes}")
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise JSONLimitError(f"{source}: JSON nested {depth} deep, more than the limit of "
                             f"{max_depth}")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise JSONLimitError(f"{source}: not UTF-8 text") from None
    except (ValueError, RecursionError) as error:
        text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise JSONLimitError(f"{source}: not valid JSON ({text})") from None


def read_json(path: str | os.PathLike[str], *, max_depth: int = MAX_DEPTH,
              max_bytes: int = MAX_BYTES) -> Any:
    """Read and parse the JSON file `path` with the limits of :func:`loads_bounded`.

    Raises OSError for a file that cannot be opened and :class:`JSONLimitError` otherwise,
    both naming `path`.
    """
    source = os.fspath(path)
    with open(source, "rb") as handle:
        data = handle.read(max_bytes + 1)
    return loads_bounded(data, source, max_depth=max_depth, max_bytes=max_bytes)


__all__ = ["MAX_BYTES", "MAX_DEPTH", "JSONLimitError", "loads_bounded", "nesting_depth",
           "read_json"]
