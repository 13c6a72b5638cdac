"""Diagnose another implementation: name every way it departs from the definition.

:func:`diagnose` sends probes it designs (in a few batched rounds) to an implementation,
through any provider of :mod:`ul2q_ref.crosscheck.check` or a plain ``solve(request)``
callable, fits a model of the implementation aspect by aspect and returns a
:class:`Diagnosis`: one :class:`Finding` per aspect (matches / deviates / not determinable,
the fitted value and the smallest probe that shows it), the closest known implementation
and a summary. docs/crosscheck.md, "Diagnosis", lists the aspects and their labels.

* :mod:`.probes`: building probes and sending rounds; :mod:`.observe`: reading answers
  leniently (ŵ only, no codes, refused requests);
* :mod:`.ul2q_aspects`: the μL2Q aspects; :mod:`.scheme_aspects`: the comparison schemes';
* :mod:`.known`: the known implementations and the closest-match; :mod:`.render`: text and
  JSON.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from .model import DEVIATES, MATCHES, UNKNOWN, VERDICTS, Diagnosis, Finding
from .probes import Provider, Rounds

SCHEMA_PATH = Path(__file__).parent.with_name("diagnosis.schema.json")
"""The JSON Schema (draft 2020-12) of the ``--json`` document."""


def as_provider(implementation: Provider | Callable[[dict[str, Any]], dict[str, Any]]
                ) -> Provider:
    """A provider for `implementation`: a provider as it is, a ``solve(request)`` wrapped.

    Providers take the list of cases: their first parameter is named ``cases`` (as every
    provider of :mod:`ul2q_ref.crosscheck.check` is) or annotated as a list. Any other
    callable is a ``solve(request) -> result`` function and is wrapped with
    :func:`~ul2q_ref.crosscheck.check.function_provider`.
    """
    from ..check import function_provider

    if not callable(implementation):
        raise TypeError(f"expected a provider or a solve(request) function, got "
                        f"{type(implementation).__name__}")
    try:
        parameters = list(inspect.signature(implementation).parameters.values())
    except (TypeError, ValueError):
        return cast(Provider, implementation)  # a builtin or extension callable
    first = parameters[0] if parameters else None
    if first is not None and (first.name == "cases" or
                              str(first.annotation).startswith(("list", "List", "Sequence"))):
        return cast(Provider, implementation)
    return function_provider(cast(Callable[[dict[str, Any]], dict[str, Any]], implementation))


def diagnose(implementation: Provider | Callable[[dict[str, Any]], dict[str, Any]], *,
             scheme: str = "ul2q", progress: bool = False) -> Diagnosis:
    """Diagnose `implementation` on `scheme`: every aspect's finding and the closest match.

    Parameters
    ----------
    implementation : provider or callable
        A provider of :mod:`ul2q_ref.crosscheck.check` (``self_provider``,
        ``function_provider(solve)``, ``command_provider(cmd)``, ``batch_provider(cmd)``,
        ``results_provider(path)``) or a plain ``solve(request) -> result`` function.
    scheme : str
        ``"ul2q"`` or a comparison scheme (``binary``, ``ternary``, ``fixed_point``,
        ``clip``).
    progress : bool
        Print one line per round on standard error.
    """
    from .known import closest
    from .render import summary
    from .scheme_aspects import SCHEME_DIAGNOSES
    from .ul2q_aspects import UL2QDiagnosis

    if scheme != "ul2q" and scheme not in SCHEME_DIAGNOSES:
        names = ", ".join(["ul2q", *SCHEME_DIAGNOSES])
        raise ValueError(f"scheme must be one of {names}, got {scheme!r}")
    rounds = Rounds(as_provider(implementation), progress=progress)
    if scheme == "ul2q":
        findings = list(UL2QDiagnosis(rounds).run().values())
    else:
        findings = SCHEME_DIAGNOSES[scheme](rounds)
    match = closest(scheme, findings)
    text = summary(scheme, findings, match)
    if rounds.unanswered:
        text += (f" {rounds.unanswered} of {rounds.probes} probes got no result at all (a "
                 "results file must answer the probes that --requests writes).")
    return Diagnosis(scheme, findings, match, text, probes=rounds.probes, rounds=rounds.count,
                     unanswered=rounds.unanswered)


def first_round_requests(scheme: str = "ul2q") -> list[dict[str, Any]]:
    """The requests of the first round of probes for `scheme` (for answering offline)."""
    from ..format import request_for
    from .scheme_aspects import SCHEME_DIAGNOSES, first_round_cases
    from .ul2q_aspects import UL2QDiagnosis

    if scheme != "ul2q" and scheme not in SCHEME_DIAGNOSES:
        raise ValueError(f"unknown scheme {scheme!r}")
    cases = (UL2QDiagnosis(Rounds(lambda cases: {})).first_round() if scheme == "ul2q"
             else first_round_cases(scheme))
    return [request_for(case) for case in cases]


__all__ = ["DEVIATES", "MATCHES", "SCHEMA_PATH", "UNKNOWN", "VERDICTS", "Diagnosis", "Finding",
           "as_provider", "diagnose", "first_round_requests"]
