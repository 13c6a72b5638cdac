"""The comparison schemes' aspects (binary, ternary, fixed point, clip)."""

from __future__ import annotations

from collections.abc import Callable

from .model import Finding
from .probes import Rounds

SCHEME_DIAGNOSES: dict[str, Callable[[Rounds], list[Finding]]] = {}


def definition_row(scheme: str) -> dict[str, str]:
    return {}
