r"""The ``"exact"`` and ``"paper"`` profiles: the definition, and the paper's λ.

``"exact"`` is the definition of docs/spec.md (:mod:`ul2q_ref.ul2q`): float64 statistics by
the corrected two-pass algorithm, the exact optimal step λ_k*, and the code rule
q = clip(⌊(w − β)/α⌋ + 1, 1 − 2^(k−1), 2^(k−1)) with a true division.

``"paper"`` takes the paper's Table I λ for k ≤ 8 (:data:`ul2q_ref.gaussian.PAPER_TABLE_I`)
and, above 8 bits, Algorithm 1's range rule **as written**: the step is
λ = (max w − min w)/(2^k − 1) and the scale is again α = λ·σ. The range max − min is already
in the units of w (it contains σ), so σ enters twice and α = σ·range/(2^k − 1) is not scale
invariant — a defect reproduced on purpose. (The reading that makes sense,
λ = (max φ − min φ)/(2^k − 1) with φ = (w − μ)/σ, would give α = range/(2^k − 1).)
Statistics, code rule and decoding are those of ``"exact"``, so the compiled kernels serve
both profiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import codebook, ul2q
from .._channels import as_rows
from ..gaussian import PAPER_TABLE_I
from ..ul2q import Statistics as ProfileStatistics


def paper_lambda(bits: int, value_range: float | None = None) -> float:
    r"""The paper profile's λ: Table I for k ≤ 8, else Algorithm 1's range rule as written.

    .. math::
        λ_k = \frac{\max w - \min w}{2^k - 1} \quad (k > 8)

    `value_range` = max w − min w (in the units of w) is needed above 8 bits. The paper then
    multiplies by σ again (α = λσ); see the module documentation.
    """
    if bits in PAPER_TABLE_I:
        return PAPER_TABLE_I[bits][0]
    if value_range is None:
        raise ValueError(f"the paper's λ for k = {bits} > 8 needs value_range = max − min")
    return float(value_range) / (2.0**bits - 1.0)


def exact_statistics(weights: np.ndarray, bits: int, axis: int | None, kernels: Any
                     ) -> ProfileStatistics:
    """The definition's statistics step (:func:`ul2q_ref.ul2q.statistics`): μ, σ (two-pass,
    float64), λ = λ_k*, α = λσ, β = μ per channel."""
    return ul2q.statistics(weights, bits, axis, kernels)


def paper_statistics(weights: np.ndarray, bits: int, axis: int | None, kernels: Any
                     ) -> ProfileStatistics:
    """The exact μ, σ; λ from Table I (k ≤ 8) or the range rule per channel; α = λσ, β = μ."""
    mean, std = kernels.moments(weights, axis)
    if bits in PAPER_TABLE_I:
        lam = np.full(mean.shape, paper_lambda(bits))
    else:
        rows = as_rows(weights, axis).astype(np.float64)
        lam = np.array([paper_lambda(bits, row.max() - row.min()) for row in rows])
    return ul2q.code_book(mean, std, lam)


def encode(weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
           axis: int | None, kernels: Any) -> np.ndarray:
    """The definition's code rule, q = clip(⌊(w − β)/α⌋ + 1, …) (:func:`ul2q_ref.ul2q.encode`)."""
    return ul2q.encode(weights, alpha, beta, bits, axis, kernels)


def decode(codes: np.ndarray, alpha: np.ndarray, beta: np.ndarray, zero_point: float,
           axis: int | None, dtype: Any, kernels: Any = None) -> np.ndarray:
    """The affine code book ŵ = α(q − z) + β (:func:`ul2q_ref.codebook.decode`, NumPy)."""
    return codebook.decode(codes, alpha, beta, zero_point, axis, np.dtype(dtype))
