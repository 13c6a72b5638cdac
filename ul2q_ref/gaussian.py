r"""The expected L2 loss of a k-bit μL2Q quantiser on N(0, 1) data, and its optimal step λ_k.

A k-bit μL2Q quantiser with step λ has 2^k cells. With M = 2^(k−1), cell j (for
j = 1 − M, …, M) is [λ(j − 1), λj), stretched to ±∞ for the two outermost cells, and every
value in it is replaced by the cell's centre c_j = λ(j − ½). For φ ~ N(0, 1) with density
p and distribution function Φ,

.. math::
    L(λ) = E[(φ − Q_λ(φ))^2] = \sum_j \int_{cell\ j} (φ − c_j)^2\, p(φ)\, dφ .

The quantiser is symmetric, so L is twice the sum over the M cells of the positive half. The
loss has two parts: *granular* error inside the M − 1 inner cells of width λ, which grows
like λ²/12, and *overload* error in the outer cell [λ(M − 1), ∞), which shrinks as λ grows.
λ_k* balances them.

The functions here take valid input (a bit width k in 1..16, a finite step λ > 0) and
assert it; :mod:`ul2q_ref.api` checks what users pass.

Every term is computed without catastrophic cancellation, so the loss keeps close to full
float64 relative precision even for k = 16, where it is about 10⁻⁹ (see
:func:`inner_cell_integrals`), and λ_k* comes out to about 1e-15 relative.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

# scipy is imported where it is first needed (the tail ratio, the cell integrals, the root
# finder), not with the package: `scipy.special` and `scipy.optimize` take several times as
# long to import as NumPy itself (benchmarks/bench_startup.py, docs/performance.md).

SQRT_2PI = math.sqrt(2.0 * math.pi)

PAPER_TABLE_I: dict[int, tuple[float, float]] = {
    1: (1.5959, 0.3625),
    2: (0.9894, 0.1189),
    3: (0.5838, 0.0374),
    4: (0.3327, 0.0115),
    5: (0.1897, 0.0035),
    6: (0.1043, 0.0010),
    7: (0.0563, 0.0003),
    8: (0.0304, 0.0001),
}
"""The paper's Table I (Gong et al., 2019): bits k -> (λ_k, expected L2 loss), 4 digits."""

_SERIES_TERMS = 32
"""Terms of the Hermite series in :func:`inner_cell_integrals` (converged well before)."""


def normal_pdf(x: np.ndarray | float) -> np.ndarray:
    """The standard normal density p(x) = exp(−x²/2)/√(2π)."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x * x) / SQRT_2PI


def mills_ratio(x: np.ndarray | float) -> np.ndarray:
    r"""R(x) = (1 − Φ(x))/p(x), the upper tail in units of the density, for x ≥ 0.

    Computed as √(π/2)·erfcx(x/√2) (``scipy.special.erfcx``), which stays accurate where
    1 − Φ(x) itself would underflow or lose digits.
    """
    from scipy import special

    x = np.asarray(x, dtype=np.float64)
    return math.sqrt(math.pi / 2.0) * special.erfcx(x / math.sqrt(2.0))


def inner_cell_integrals(
    centres: np.ndarray, half_width: float
) -> tuple[np.ndarray, np.ndarray]:
    r"""First and second moments of φ − c over inner cells [c − h, c + h] of N(0, 1).

    Returns ``(m1, m2)`` with

    .. math::
        m_1(c) = \int_{-h}^{h} u\, p(c + u)\, du, \qquad
        m_2(c) = \int_{-h}^{h} u^2\, p(c + u)\, du .

    The closed forms in Φ and p, e.g. m₂ = (1 + c²)ΔΦ − c(p(a) − p(b)) − h(p(a) + p(b)),
    subtract terms of size h from one another to leave a result of size h³, which costs
    about log₁₀(1/h²) digits: eight digits for 16-bit cells. For narrow cells this function
    therefore integrates the Taylor series of the density about the cell centre,

    .. math::
        p(c + u) = p(c) \sum_n \mathrm{He}_n(c) \frac{(-u)^n}{n!}, \qquad
        m_2 = 2h^3 p(c) \sum_{n\ even} \frac{t_n}{n + 3}, \quad
        m_1 = -2h^2 p(c) \sum_{n\ odd} \frac{t_n}{n + 2},

    with t_n = He_n(c) hⁿ/n! (He_n: probabilists' Hermite polynomials, from the recurrence
    t_{n+1} = (c h t_n − h² t_{n−1})/(n + 1)). Its terms shrink like (h(|c| + √n))ⁿ/n!, so it
    is used where h(|c| + 1) ≤ 1; elsewhere the cell is wide or lies so far out in the tail
    that the closed form's cancellation costs nothing that matters.
    """
    from scipy import special

    c = np.abs(np.asarray(centres, dtype=np.float64))
    h = float(half_width)
    m1 = np.empty_like(c)
    m2 = np.empty_like(c)
    narrow = h * (c + 1.0) <= 1.0

    # Taylor (Hermite) series about the centre, for narrow cells.
    cn = c[narrow]
    previous, term = np.zeros_like(cn), np.ones_like(cn)  # t_{-1}, t_0
    even_sum, odd_sum = term / 3.0, np.zeros_like(cn)
    for n in range(_SERIES_TERMS):
        previous, term = term, (cn * h * term - h * h * previous) / (n + 1)
        if (n + 1) % 2:
            odd_sum += term / (n + 3)
        else:
            even_sum += term / (n + 4)
    density = normal_pdf(cn)
    m2[narrow] = 2.0 * h**3 * density * even_sum
    m1[narrow] = -2.0 * h**2 * density * odd_sum

    # Closed form in Φ and p, for the rest.
    cw = c[~narrow]
    lower, upper = cw - h, cw + h
    mass = special.ndtr(-lower) - special.ndtr(-upper)  # Φ(b) − Φ(a) from the upper tail
    p_lower, p_upper = normal_pdf(lower), normal_pdf(upper)
    m1[~narrow] = (p_lower - p_upper) - cw * mass
    m2[~narrow] = (1.0 + cw * cw) * mass - cw * (p_lower - p_upper) - h * (p_lower + p_upper)

    sign = np.where(np.asarray(centres) < 0, -1.0, 1.0)  # m₁ is odd in c, m₂ even
    return sign * m1, m2


def outer_cell_integrals(start: float, centre: float) -> tuple[float, float]:
    r"""First and second moments of φ − c over the outer cell [a, ∞) of N(0, 1), for a ≥ 0.

    .. math::
        \int_a^\infty (φ - c)\, p\, dφ = p(a)\,[1 - c R(a)], \qquad
        \int_a^\infty (φ - c)^2 p\, dφ = p(a)\,[(1 + c^2) R(a) - (2c - a)],

    with R the Mills ratio (:func:`mills_ratio`).
    """
    density = float(normal_pdf(start))
    ratio = float(mills_ratio(start))
    first = density * (1.0 - centre * ratio)
    second = density * ((1.0 + centre * centre) * ratio - (2.0 * centre - start))
    return first, second


def _half_quantizer(lam: float, bits: int) -> tuple[np.ndarray, float, float]:
    """Inner-cell centres of the positive half, and the outer cell's start and centre."""
    half = 2 ** (bits - 1)  # M cells on each side
    inner_centres = lam * (np.arange(1, half, dtype=np.float64) - 0.5)
    return inner_centres, lam * (half - 1), lam * (half - 0.5)


def expected_loss(lam: float, bits: int) -> float:
    r"""The expected L2 loss L(λ) = E[(φ − Q_λ(φ))²] of the k-bit quantiser, φ ~ N(0, 1).

    .. math::
        L(λ) = 2\Big[\sum_{j=1}^{M-1} m_2(c_j) + \int_{λ(M-1)}^{\infty}(φ - c_M)^2 p\,dφ\Big],
        \qquad c_j = λ(j - ½),\ M = 2^{k-1}

    computed exactly (no sampling) from :func:`inner_cell_integrals` and
    :func:`outer_cell_integrals`.

    Parameters
    ----------
    lam : float
        The step λ > 0, in units of σ.
    bits : int
        The bit width k, 1 to 16.
    """
    assert lam > 0.0 and 1 <= bits <= 16
    inner_centres, outer_start, outer_centre = _half_quantizer(lam, bits)
    _, inner = inner_cell_integrals(inner_centres, lam / 2.0)
    _, outer = outer_cell_integrals(outer_start, outer_centre)
    return 2.0 * (math.fsum(inner) + outer)


def expected_loss_derivative(lam: float, bits: int) -> float:
    r"""dL/dλ of :func:`expected_loss`.

    The thresholds λj sit midway between neighbouring centres, so moving a threshold
    changes the loss only to second order: the two cells it separates make the same error
    there. Only the movement of the centres c_j = λ(j − ½) contributes:

    .. math::
        \frac{dL}{dλ} = -2 \sum_j (j - ½) \int_{cell\ j} (φ - c_j)\, p(φ)\, dφ
                      = -4 \sum_{j=1}^{M} (j - ½)\, m_1(c_j)

    (the second sum over the positive half, its last term over the outer cell).
    """
    assert lam > 0.0 and 1 <= bits <= 16
    inner_centres, outer_start, outer_centre = _half_quantizer(lam, bits)
    inner, _ = inner_cell_integrals(inner_centres, lam / 2.0)
    outer, _ = outer_cell_integrals(outer_start, outer_centre)
    half = 2 ** (bits - 1)
    index = np.arange(1, half, dtype=np.float64) - 0.5
    return -4.0 * (math.fsum(index * inner) + (half - 0.5) * outer)


def optimal_lambda(bits: int) -> float:
    r"""The exact optimal step λ_k* = argmin_λ L(λ) for k-bit μL2Q on N(0, 1).

    λ_k* is the root of :func:`expected_loss_derivative`: for λ → 0 the overload error
    dominates and dL/dλ < 0; for large λ the granular error dominates and dL/dλ > 0; L is
    smooth in between with a single minimum. The root is bracketed in [2^(1−k), 2] (the
    standard normal's useful range ±4 is covered by 2^k cells of width 8/2^k, well inside)
    and found by Brent's method (``scipy.optimize.brentq``) to the smallest relative tolerance
    it accepts (4 ulps). For k = 1 the result is 2√(2/π) = 1.5957691216…, twice the mean of
    |φ|: the centres ±λ/2 are then the conditional means E[φ | φ > 0] = √(2/π).

    Parameters
    ----------
    bits : int
        The bit width k, 1 to 16. Results are cached.
    """
    assert 1 <= bits <= 16
    return _optimal_lambda(bits)


@functools.cache
def _optimal_lambda(bits: int) -> float:
    from scipy import optimize

    return optimize.brentq(
        expected_loss_derivative,
        2.0 ** (1 - bits),
        2.0,
        args=(bits,),
        xtol=1e-300,
        rtol=4 * np.finfo(np.float64).eps,
        maxiter=200,
    )


class LambdaRow(NamedTuple):
    """One row of :func:`lambda_table`."""

    bits: int
    lam: float
    """The exact optimum λ_k*."""
    loss: float
    """L(λ_k*), the smallest expected loss of a k-bit μL2Q quantiser on N(0, 1)."""
    paper_lam: float | None
    """The paper's Table I λ (k ≤ 8), else None."""
    paper_loss: float | None
    """The paper's Table I loss as printed (k ≤ 8), else None."""
    paper_excess_percent: float | None
    """100·(L(paper λ) − L(λ_k*))/L(λ_k*): how much the published λ loses, else None."""


def lambda_table(bits: Iterable[int] = range(1, 17)) -> list[LambdaRow]:
    """Exact λ_k* and loss for each k in `bits`, beside the paper's Table I where it has one."""
    rows = []
    for k in bits:
        lam = optimal_lambda(k)
        loss = expected_loss(lam, k)
        paper_lam, paper_loss, excess = None, None, None
        if k in PAPER_TABLE_I:
            paper_lam, paper_loss = PAPER_TABLE_I[k]
            excess = 100.0 * (expected_loss(paper_lam, k) - loss) / loss
        rows.append(LambdaRow(k, lam, loss, paper_lam, paper_loss, excess))
    return rows
