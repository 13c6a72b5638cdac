r"""The λ a profile effectively uses, and the expected range of normal samples (Table I).

The analysis behind the report's Table I: the paper's range rule above 8 bits needs
E[max − min] of n normal values (:func:`expected_range`), and :func:`effective_lambda` is the
normalised step α/σ each profile ends up with.
"""

from __future__ import annotations

import math

import numpy as np

from ..gaussian import PAPER_TABLE_I, optimal_lambda
from ..profiles import caffe, check_profile


def expected_range(n: int) -> float:
    r"""E[max − min] of n independent N(0, 1) values.

    .. math::
        E[R_n] = \int (1 - Φ(x)^n - (1 - Φ(x))^n)\, dx
               = 2 \int_0^\infty \big(-\mathrm{expm1}(n \log(1 - Q(x))) - Q(x)^n\big)\, dx

    with Q(x) = 1 − Φ(x), by symmetry; ``expm1``/``log1p`` keep 1 − Φⁿ accurate where Φ is
    within rounding of 1 (n = 400,000 needs it). The quadrature is split at √(2 ln n), where
    the integrand falls from 1 to 0.
    """
    from scipy import integrate, special

    def integrand(x: float) -> float:
        tail = float(special.ndtr(-x))
        return -math.expm1(n * math.log1p(-tail)) - tail**n

    knee = math.sqrt(2.0 * math.log(max(n, 2)))
    value, _ = integrate.quad(integrand, 0.0, 40.0, points=[knee], limit=400,
                              epsabs=1e-13, epsrel=1e-13)
    return 2.0 * value


def effective_lambda(profile: str, bits: int, *, std: float = 1.0, n: int = 4096) -> float:
    r"""The normalised step α/σ a profile uses for a tensor with standard deviation `std`.

    ``"exact"``: λ_k*. ``"paper"``: Table I for k ≤ 8; above, α/σ = (max − min)/(2^k − 1)
    with max − min taken as its expectation σ·E[R_n] for n normal values
    (:func:`expected_range`), i.e. α/σ = std·E[R_n]/(2^k − 1). ``"caffe"``: f32(T_k) + 10⁻⁷/σ
    for k ≤ 8; above, α/σ = 6.2·σ/(2^k − 1) + 10⁻⁷/σ (float32 rounding ignored).
    Only the range rules depend on `std`: that is the defect of σ entering twice.
    """
    profile = check_profile(profile)
    if profile == "exact":
        return optimal_lambda(bits)
    if profile == "paper":
        if bits in PAPER_TABLE_I:
            return PAPER_TABLE_I[bits][0]
        return std * expected_range(n) / (2.0**bits - 1.0)
    if bits <= 8:
        lam = float(np.float32(caffe.LAMBDA_TABLE[bits - 1]))
    else:
        lam = caffe.RANGE_SIGMAS * std / (2.0**bits - 1.0)
    return lam + caffe.ALPHA_EPSILON / std


__all__ = ["effective_lambda", "expected_range"]
