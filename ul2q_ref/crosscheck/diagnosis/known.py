"""Known implementations as labels per aspect, and the closest one to a diagnosis.

Each row says what the diagnosis finds for that implementation: ``exact`` is this package
(the definition); ``paper`` and ``caffe`` are the profiles of :mod:`ul2q_ref.profiles`;
``pytorch-naive`` is the common re-implementation with ``torch.std`` (unbiased by default)
and ``torch.round`` (half to even).
"""

from __future__ import annotations

from typing import Any

from .model import UNKNOWN, Finding
from .ul2q_aspects import DEFINITION

KNOWN: dict[str, dict[str, dict[str, str]]] = {
    "ul2q": {
        "exact": dict(DEFINITION),
        "paper": {**DEFINITION, "lambda": "table-1", "lambda_above_8": "paper-range-rule"},
        "caffe": {**DEFINITION, "lambda": "caffe-table", "lambda_above_8": "caffe-6.2-sigma",
                  "epsilon": "added-to-alpha", "tie_rule": "half-away",
                  "statistics_precision": "float32", "subnormals": "flushed",
                  "decode_arithmetic": "reciprocal"},
        "pytorch-naive": {**DEFINITION, "std_estimator": "unbiased", "tie_rule": "half-even"},
    },
}
"""Every known implementation's label per aspect, by scheme and name."""


def closest(scheme: str, findings: list[Finding]) -> dict[str, Any]:
    """The known implementation that agrees with the most determinable findings.

    Returns ``{"name", "agreement", "of", "differs"}``: how many of the ``of`` determinable
    aspects agree, and the aspects that do not. Ties go to the earlier row.
    """
    rows = KNOWN.get(scheme)
    if not rows:
        from .scheme_aspects import definition_row

        rows = {"ul2q-ref": definition_row(scheme)}
    decided = [f for f in findings if f.verdict != UNKNOWN]
    best: dict[str, Any] | None = None
    for name, row in rows.items():
        differs = [f.aspect for f in decided if row.get(f.aspect) != f.label]
        agreement = len(decided) - len(differs)
        if best is None or agreement > best["agreement"]:
            best = {"name": name, "agreement": agreement, "of": len(decided),
                    "differs": differs}
    assert best is not None
    return best


__all__ = ["KNOWN", "closest"]
