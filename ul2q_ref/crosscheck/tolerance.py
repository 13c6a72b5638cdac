"""How far a correct implementation that sums in another order can be from the statistics step.

:func:`stats_tolerance` bounds, in units in the last place of the parameter dtype, the
distance of α and β computed with any summation order from ours (docs/crosscheck.md, §3).
"""

from __future__ import annotations

import math

import numpy as np

from .._channels import as_rows
from . import steps


def stats_tolerance(
    scheme: str,
    profile: str | None,
    weights: np.ndarray,
    bits: int,
    axis: int | None,
    stats: steps.Statistics,
) -> dict[str, int | None]:
    r"""The largest ulp distance of α, β (Δ) a correct implementation may show on this input.

    Derived from the worst-case error of summation in *any* order (Higham, *Accuracy and
    Stability of Numerical Algorithms*, 2002, §4.2): n terms summed in precision u carry a
    relative error of at most γ_n = nu/(1 − nu) of Σ|terms|. Both this reference and the
    implementation under test round, so each bound is doubled, plus a few ulps for the final
    roundings:

    * μL2Q, exact/paper (float64, two-pass): β: 2⌈γ_n mean|w| / ulp(μ)⌉ + 2; α: n + 12
      (the corrected two-pass σ has a relative error of about (n/2 + 3)u). A constant
      channel is exact under any order (the σ = 0 rule), so 0.
    * μL2Q, caffe (float32, one pass): β as above with u = 2⁻²⁴; α from the error of
      E[w²] − μ², which is relative to E[w²] and so grows like E[w²]/σ² (doubled above 8
      bits, where α ∝ σ²). ``None`` (no bound: only the sequential order defines the result)
      where the variance is not positive.
    * binary, ternary: 2(n + 2) for α (for ternary assuming the same values exceed Δ) and
      2(n + 3) for Δ; fixed point and clip: 0 (max and one rounding: order-free).

    Bounds are capped at 2⁵³. β of the comparison schemes is 0 exactly (bound 0).
    """
    rows = as_rows(np.asarray(weights), axis).astype(np.float64)
    n = rows.shape[1]
    cap = 2**53
    if scheme != "ul2q":
        bounds: dict[str, int | None] = {"alpha": 0, "beta": 0}
        if scheme in ("binary", "ternary"):
            bounds["alpha"] = 2 * (n + 2)
        if scheme == "ternary":
            bounds["threshold"] = 2 * (n + 3)
        return bounds
    alpha_bound = beta_bound = 0
    std, lam = stats.details["std"], stats.details["lam"]
    for channel, row in enumerate(rows):
        mean = float(stats.beta[channel])
        if profile == "caffe":
            values = row.astype(np.float32).astype(np.float64)
            unit = 2.0**-24
            if not float(std[channel]) > 0.0:
                return {"alpha": None, "beta": None}
            beta_error = _gamma(n, unit) * float(np.mean(np.abs(values)))
            square_mean = float(np.mean(values * values))
            variance = float(std[channel]) ** 2
            variance_error = ((_gamma(n + 1, unit) + unit) * square_mean
                              + 2.0 * abs(mean) * beta_error + beta_error**2)
            relative = variance_error / (2.0 * variance) + unit
            if bits > 8:
                relative *= 2.0
            lam_sigma = float(lam[channel]) * float(std[channel])
            relative *= lam_sigma / float(stats.alpha[channel])
            channel_alpha = _capped(2.0 * relative / unit + 6.0, cap)
            channel_beta = _capped(2.0 * beta_error / _spacing(mean, np.float32) + 2.0, cap)
        else:
            if row.min() == row.max():
                continue
            beta_error = _gamma(n, 2.0**-53) * float(np.mean(np.abs(row)))
            channel_beta = _capped(2.0 * beta_error / _spacing(mean, np.float64) + 2.0, cap)
            channel_alpha = n + 12
        alpha_bound = max(alpha_bound, channel_alpha)
        beta_bound = max(beta_bound, channel_beta)
    return {"alpha": alpha_bound, "beta": beta_bound}


def _gamma(n: int, unit: float) -> float:
    return n * unit / (1.0 - n * unit)


def _spacing(value: float, dtype: type) -> float:
    return float(np.spacing(dtype(abs(value))))


def _capped(value: float, cap: int) -> int:
    return cap if not math.isfinite(value) or value >= cap else int(math.ceil(value))


__all__ = [
    "stats_tolerance",
]
