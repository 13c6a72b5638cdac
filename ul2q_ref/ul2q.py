r"""μL2Q quantisation: normalise, split the line uniformly with step λ_k, take cell centres.

For a weight tensor w with mean μ and standard deviation σ (:func:`ul2q_ref.stats.moments`):

.. math::
    β = μ, \qquad α = λ_k^*\,σ, \qquad
    q = \mathrm{clip}\Big(\Big\lfloor \frac{w - β}{α} \Big\rfloor + 1,\ 1 - 2^{k-1},\ 2^{k-1}\Big),
    \qquad \hat w = α\,(q - ½) + β

(w − β)/α = φ/λ_k is the normalised value in units of the step. The cells are half-open,
[α(q − 1), αq) around β, so a value exactly on a threshold goes to the upper cell; the floor,
the division and the subtraction are all evaluated in float64. A tensor with σ = 0 has
α = 0: every code is 1 and ŵ = β exactly.

The functions below are the definition, step by step, for valid input: a finite, non-empty
float32 or float64 array, k in 1..16, a channel axis in range (or None) and α ≥ 0, β as
float64 vectors with one entry per channel (a single entry for a whole tensor). The public
:func:`ul2q_ref.quantize` checks what users pass, then runs these steps or the compiled
kernels that reproduce them bit for bit (:mod:`ul2q_ref.kernels`).
"""

from __future__ import annotations

import numpy as np

from ._channels import broadcastable
from .codebook import Quantized, code_dtype, code_range, decode, public_parameter
from .gaussian import optimal_lambda
from .stats import moments

ZERO_POINT = 0.5
"""z = ½: μL2Q's levels sit at cell centres, ŵ = α(q − ½) + β. The one place it is defined."""


def statistics(weights: np.ndarray, bits: int, axis: int | None) -> tuple[np.ndarray, ...]:
    r"""The statistics step: the code book (α, β) of each channel, and λ_k*.

    .. math::
        β = μ, \qquad α = λ_k^*\,σ

    with μ, σ from :func:`ul2q_ref.stats.moments` and λ_k* from
    :func:`ul2q_ref.gaussian.optimal_lambda`.

    Returns
    -------
    alpha, beta, lam : numpy.ndarray
        float64 vectors, one entry per channel.
    """
    return code_book(*moments(weights, axis), bits)


def code_book(mean: np.ndarray, std: np.ndarray, bits: int) -> tuple[np.ndarray, ...]:
    """α = λ_k* σ and β = μ for each channel's (μ, σ); returns α, β and λ (vectors)."""
    lam = np.full(mean.shape, optimal_lambda(bits))
    return lam * std, mean, lam


def encode(
    weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int, axis: int | None
) -> np.ndarray:
    r"""The encode step: the codes of `weights` for the code book (α, β).

    .. math::
        q = \mathrm{clip}(\lfloor (w - β)/α \rfloor + 1,\ 1 - 2^{k-1},\ 2^{k-1}),
        \qquad q = 1 \text{ where } α = 0

    Returns
    -------
    numpy.ndarray
        Codes of dtype :func:`ul2q_ref.codebook.code_dtype` (int8 for k ≤ 7, int16 up to
        k = 15, int32 at k = 16), with the shape of `weights`.
    """
    assert np.all(alpha >= 0) and 1 <= bits <= 16
    lowest, highest = code_range(bits)
    scale = broadcastable(alpha, weights.ndim, axis)
    offset = broadcastable(beta, weights.ndim, axis)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        steps = (weights.astype(np.float64) - offset) / scale
        codes = np.clip(np.floor(steps) + 1.0, lowest, highest)
    codes = np.where(scale == 0.0, 1.0, codes)
    return codes.astype(code_dtype(bits))


def dequantize(
    codes: np.ndarray, alpha: np.ndarray, beta: np.ndarray, axis: int | None, dtype: np.dtype
) -> np.ndarray:
    r"""The decode step: ŵ = α(q − ½) + β (:func:`ul2q_ref.codebook.decode` with z = ½)."""
    return decode(codes, alpha, beta, ZERO_POINT, axis, dtype)


def quantize(weights: np.ndarray, bits: int, axis: int | None, dtype: np.dtype) -> Quantized:
    """μL2Q: the statistics step, then the encode step; `dtype` is the reconstruction's."""
    alpha, beta, lam = statistics(weights, bits, axis)
    return Quantized(
        codes=encode(weights, alpha, beta, bits, axis),
        alpha=public_parameter(alpha, axis),
        beta=public_parameter(beta, axis),
        zero_point=ZERO_POINT,
        bits=bits,
        lam=float(lam[0]),
        axis=axis,
        scheme="ul2q",
        dtype=np.dtype(dtype),
    )


def fake_quantize(
    weights: np.ndarray, bits: int, axis: int | None, dtype: np.dtype
) -> np.ndarray:
    """The reconstruction ŵ of `weights`: all three steps, the forward pass of QAT."""
    alpha, beta, _ = statistics(weights, bits, axis)
    return dequantize(encode(weights, alpha, beta, bits, axis), alpha, beta, axis, dtype)


__all__ = ["ZERO_POINT", "dequantize", "encode", "fake_quantize", "quantize", "statistics"]
