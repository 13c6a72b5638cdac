r"""Reading an implementation's answers leniently: whatever parts of a result it gave.

An implementation may answer the whole pipeline only, ŵ only (no codes, no α, β), or one
dtype only; a part it leaves out (or gets malformed) is None here, and a request it refuses
is an :class:`Observation` with ``error`` set. :func:`level_step` recovers α from ŵ alone
(the smallest gap between reconstruction levels) and :func:`codes_from_output` recovers the
codes from ŵ, α, β and the zero point z of ŵ = α(q − z) + β.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..case import Case
from ..encoding import from_hex


@dataclass
class Part:
    """One step's answer: α, β (Δ) (whole pipeline only), codes and ŵ, each None if absent."""

    alpha: np.ndarray | None
    beta: np.ndarray | None
    codes: np.ndarray | None
    output: np.ndarray | None
    threshold: np.ndarray | None = None


@dataclass
class Observation:
    """A probe and what the implementation answered to it."""

    case: Case
    error: str | None
    pipeline: Part | None
    encode: Part | None

    @property
    def refused(self) -> bool:
        """Whether the implementation answered with an error (or nothing at all)."""
        return self.error is not None


def _floats(record: Any, dtype: str, count: int) -> np.ndarray | None:
    patterns = record.get("hex") if isinstance(record, dict) else record
    if not isinstance(patterns, list) or len(patterns) != count:
        return None
    try:
        return from_hex(patterns, dtype).astype(np.float64)
    except (ValueError, TypeError):
        return None


def _codes(record: Any, count: int) -> np.ndarray | None:
    if not isinstance(record, list) or len(record) != count:
        return None
    if not all(isinstance(code, int) and not isinstance(code, bool) and abs(code) < 2**62
               for code in record):
        return None  # a null (undefined) code or garbage: no codes to read
    return np.array(record, dtype=np.int64)


def _part(record: Any, case: Case, pipeline: bool) -> Part | None:
    if not isinstance(record, dict):
        return None
    size = case.weights.size
    channels = case.encode_alpha.size
    parameter = case.parameter_dtype
    alpha = _floats(record.get("alpha"), parameter, channels) if pipeline else None
    beta = _floats(record.get("beta"), parameter, channels) if pipeline else None
    codes = _codes(record.get("codes"), size)
    output = _floats(record.get("output"), case.dtype, size)
    threshold = _floats(record.get("threshold"), parameter, channels) if pipeline else None
    if alpha is None and beta is None and codes is None and output is None:
        return None
    return Part(alpha, beta, codes, output, threshold)


def observe(case: Case, result: Any) -> Observation:
    """The parts of `result` (a result object of the protocol, or None) for `case`."""
    if not isinstance(result, dict):
        return Observation(case, "no result", None, None)
    if result.get("error") is not None:
        return Observation(case, str(result["error"])[:300], None, None)
    pipeline = _part(result.get("quantize"), case, True)
    encode = _part(result.get("encode"), case, False)
    if pipeline is None and encode is None:
        return Observation(case, "no usable part in the result", None, None)
    return Observation(case, None, pipeline, encode)


def level_step(output: np.ndarray) -> float | None:
    """α from ŵ alone: the smallest gap between distinct finite levels, if it is consistent.

    Every gap between two distinct levels of ŵ = α(q − z) + β is a whole multiple of α, so
    the smallest one is α when two neighbouring levels occur. Values within 1e-9 of the
    span of ŵ are taken as one level (rounding noise, e.g. of w + (ŵ − w)). None when fewer
    than two levels occur or a gap is not (within 1e-4) a whole multiple of the smallest.
    """
    values = np.unique(output[np.isfinite(output)].astype(np.float64))
    if values.size < 2:
        return None
    span = float(values[-1] - values[0])
    gaps = np.diff(values)
    gaps = gaps[gaps > 1e-9 * span]
    if gaps.size == 0:
        return None
    step = float(gaps.min())
    multiples = gaps / step
    if np.max(np.abs(multiples - np.rint(multiples))) > 1e-4:
        return None
    return step


def codes_from_output(output: np.ndarray, alpha: np.ndarray | float,
                      beta: np.ndarray | float, zero_point: float) -> np.ndarray | None:
    """q = round((ŵ − β)/α + z): the codes that ŵ decodes from (None if α is not > 0)."""
    if not (np.all(np.isfinite(alpha)) and np.all(alpha > 0)):
        return None
    with np.errstate(all="ignore"):
        values = (output - beta) / alpha + zero_point
    if not np.all(np.isfinite(values)):
        return None
    return np.rint(values).astype(np.int64)


__all__ = ["Observation", "Part", "codes_from_output", "level_step", "observe"]
