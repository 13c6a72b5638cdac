"""Cross-checking kit: conformance vectors, a checker, and this package as a test subject.

Modelled on how cryptography libraries are checked against Project Wycheproof's vectors:
many small, named cases, each saying what it tests.

* :mod:`~ul2q_ref.crosscheck.vectors` writes and reads the suite (``ul2q-ref vectors``);
  ``vectors.schema.json`` beside it is the JSON Schema of ``vectors.json``, and
  ``results.schema.json`` that of a results file (:mod:`~ul2q_ref.crosscheck.schema`
  validates both with the ``jsonschema`` package).
* :mod:`~ul2q_ref.crosscheck.check` compares an implementation's results with it
  (``ul2q-ref check``): :mod:`.compare` and :mod:`.explain` judge and explain each case,
  :mod:`.supervise` runs commands, :mod:`.results` reads their output.
* :func:`adapt` and :func:`adapt_torch_module` (from :mod:`.adapters`) turn a plain
  quantiser into the checker's ``solve(request) -> result``; ``templates/adapter_template.py``
  is the standalone adapter for other environments.
* :mod:`~ul2q_ref.crosscheck.steps` defines the statistics and encode steps of every scheme.
* :mod:`~ul2q_ref.crosscheck.reference_impl` answers the checker's protocol with this
  package (``python -m ul2q_ref.crosscheck.reference_impl``).
* :mod:`~ul2q_ref.crosscheck.encoding`: hex bit patterns and ulp distances.
* :mod:`~ul2q_ref.crosscheck.diagnosis` names every way an implementation departs from the
  definition (``ul2q-ref diagnose``); its :func:`diagnose` is importable from here (loaded
  on first use; the package is not called ``diagnose`` so that the name stays the function).

docs/crosscheck.md documents the format, the protocol and the defects the profiles reproduce.
"""

from __future__ import annotations

from typing import Any

from .schema import RESULTS_SCHEMA_PATH, SCHEMA_PATH

_ADAPTERS = ("adapt", "adapt_torch_module")
_DIAGNOSIS = ("diagnose", "Diagnosis")


def __getattr__(name: str) -> Any:
    """The adapters and ``diagnose`` (with its ``Diagnosis``), imported on first use."""
    if name in _ADAPTERS:
        from . import adapters

        return getattr(adapters, name)
    if name in _DIAGNOSIS:
        from . import diagnosis

        return getattr(diagnosis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RESULTS_SCHEMA_PATH", "SCHEMA_PATH", "Diagnosis", "adapt", "adapt_torch_module",
           "diagnose"]
