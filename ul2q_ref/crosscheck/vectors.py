r"""Conformance vectors: many small named cases, each saying what it tests.

``ul2q-ref vectors --out DIR`` (:func:`write_suite`) writes ``DIR/vectors.json`` and, for the
few large cases, ``DIR/data/*.npy``. The format is described by ``vectors.schema.json`` (JSON
Schema, shipped beside this module) and in docs/crosscheck.md. Each case holds

* what to run: scheme, profile (μL2Q only), bits, axis, dtype, shape;
* the input, as exact bit patterns in hex (plus decimals for people);
* the **statistics step** (``stats``): the expected α and β (and Δ for ternary) per channel,
  with informational μ, σ, λ and ``tolerance_ulps``, the largest distance a correct
  implementation that sums in another order can show (see :func:`stats_tolerance`);
  ``null`` for encode-only cases;
* the **encode step** (``encode``): given α and β (for ordinary cases the ones of the
  statistics step, for encode-only cases chosen to put values exactly on thresholds), the
  expected codes and reconstruction ŵ as bit patterns.

The output is deterministic: fixed per-case seeds (derived from the case id) and a fixed
layout, so the same package version writes the same bytes every run.

The code is split by concern: :mod:`.case` (the :class:`Case` record and its construction),
:mod:`.tolerance` (the ulp bound of the statistics step), :mod:`.catalogue` (the named
cases) and :mod:`.format` (JSON and ``.npy`` writing and loading, the checker's requests).
This module gathers their public names.
"""

from __future__ import annotations

from .case import (
    FLAGS,
    FORMAT,
    INLINE_LIMIT,
    READABLE_SCHEMA_VERSIONS,
    RESULTS_FORMAT,
    RESULTS_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Case,
    build_case,
)
from .catalogue import generate_cases
from .format import (
    Suite,
    SuiteError,
    case_from_json,
    case_to_json,
    flag_counts,
    load_suite,
    render,
    request_for,
    suite_header,
    write_suite,
)
from .tolerance import stats_tolerance

__all__ = [
    "FLAGS",
    "FORMAT",
    "INLINE_LIMIT",
    "READABLE_SCHEMA_VERSIONS",
    "RESULTS_FORMAT",
    "RESULTS_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "Case",
    "Suite",
    "SuiteError",
    "build_case",
    "case_from_json",
    "case_to_json",
    "flag_counts",
    "generate_cases",
    "load_suite",
    "render",
    "request_for",
    "stats_tolerance",
    "suite_header",
    "write_suite",
]
