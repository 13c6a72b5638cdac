"""Building probes (cases this diagnosis designs) and sending them in batched rounds.

A probe is an ordinary :class:`~ul2q_ref.crosscheck.case.Case` (built with
:func:`~ul2q_ref.crosscheck.case.build_case`, so it also carries what the definition gives),
sent through any provider of :mod:`ul2q_ref.crosscheck.check`. Probe ids start with
``diag-`` so they never collide with the conformance vectors.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..case import Case, build_case
from .observe import Observation, observe

Provider = Callable[[list[Case]], dict[str, dict[str, Any]]]


def rng(name: str) -> np.random.Generator:
    """A generator seeded from `name`: each probe's input is fixed."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def symmetric_normal(name: str, half: int) -> np.ndarray:
    """2·`half` float64 values ±x with x ~ N(0, 1): the mean is 0 in exact arithmetic."""
    values = np.abs(rng(name).standard_normal(half)) + 0.05
    return np.concatenate([values, -values])


def probe(case_id: str, comment: str, scheme: str, bits: int, weights: np.ndarray, *,
          axis: int | None = None, given: tuple[Any, Any, Any] | None = None) -> Case:
    """A probe case: `weights` through `scheme` (μL2Q: the definition, profile exact)."""
    profile = "exact" if scheme == "ul2q" else None
    return build_case(f"diag-{case_id}", comment, [], scheme, profile, bits,
                      np.ascontiguousarray(weights), axis=axis, given=given)


class Rounds:
    """Sends probes to a provider, one batch per round, and keeps every observation."""

    def __init__(self, provider: Provider, *, progress: bool = False) -> None:
        self.provider = provider
        self.progress = progress
        self.count = 0
        self.probes = 0
        self.unanswered = 0
        self.seconds = 0.0

    def ask(self, cases: list[Case], what: str) -> dict[str, Observation]:
        """One round: every case's observation, by case id."""
        if not cases:
            return {}
        self.count += 1
        self.probes += len(cases)
        start = time.monotonic()
        if self.progress:
            print(f"diagnose: round {self.count}: {len(cases)} probes ({what})",
                  file=sys.stderr, flush=True)
        results = self.provider(cases)
        self.seconds += time.monotonic() - start
        self.unanswered += sum(case.id not in results for case in cases)
        return {case.id: observe(case, results.get(case.id)) for case in cases}


def describe_input(values: np.ndarray, limit: int = 6) -> str:
    """A short text form of a probe's input: up to `limit` values and the count."""
    flat = np.ravel(values)
    shown = ", ".join(f"{float(v):.9g}" for v in flat[:limit])
    more = f", … ({flat.size} values)" if flat.size > limit else ""
    return f"[{shown}{more}] {values.dtype.name}"


def evidence(obs: Observation, expected: Any, got: Any, note: str = "") -> dict[str, Any]:
    """The evidence record of a finding: the probe, its input, expected and got."""
    record: dict[str, Any] = {"probe": obs.case.id, "input": describe_input(obs.case.weights),
                              "expected": str(expected), "got": str(got)}
    if note:
        record["note"] = note
    return record


__all__ = ["Provider", "Rounds", "describe_input", "evidence", "probe", "rng",
           "symmetric_normal"]
