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
float64 vectors with one entry per channel (a single entry for a whole tensor). They are
also what runs: every caller (:func:`ul2q_ref.quantize`, the trainer, the PyTorch bridge,
the profiles) composes μL2Q through them, handing in the *step implementations* as
``kernels`` — an object with the four functions ``moments``, ``encode``, ``decode`` and
``fake_quantize`` of :class:`Kernels`. The default, :data:`DEFINITION`, is the NumPy
definition written here and in :mod:`ul2q_ref.stats` and :mod:`ul2q_ref.codebook`; the
compiled kernels (:mod:`ul2q_ref.kernels`) are swapped in by name and give the same bits.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Protocol

import numpy as np

from . import stats
from ._channels import broadcastable
from .codebook import (
    ZERO_POINT,
    Quantized,
    check_representable,
    code_dtype,
    code_range,
    decode,
    public_parameter,
)
from .gaussian import optimal_lambda


class Kernels(Protocol):
    """The step implementations μL2Q is composed of (the calling convention of
    :mod:`ul2q_ref.kernels`: valid input, α and β float64 vectors, the output dtype given)."""

    def moments(self, weights: np.ndarray, axis: int | None, /
                ) -> tuple[np.ndarray, np.ndarray]: ...

    def encode(self, weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
               axis: int | None, dtype: Any, /) -> np.ndarray: ...

    def decode(self, codes: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
               zero_point: float, axis: int | None, dtype: Any, /) -> np.ndarray: ...

    def fake_quantize(self, weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                      bits: int, zero_point: float, axis: int | None, dtype: Any, /,
                      out: np.ndarray | None = None) -> np.ndarray: ...


# --------------------------------------------------------------------------- the code rule


def cell_codes(
    weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int, axis: int | None
) -> np.ndarray:
    r"""The code rule: the cell of each weight for the code book (α, β).

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


class _Definition:
    """The steps as this package defines them, in the kernel calling convention: the NumPy
    reference twins of :mod:`ul2q_ref.kernels.reference` without their call checks."""

    moments = staticmethod(stats.moments)
    decode = staticmethod(decode)

    @staticmethod
    def encode(weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
               axis: int | None, dtype: Any, /) -> np.ndarray:
        return cell_codes(weights, alpha, beta, bits, axis).astype(dtype, copy=False)

    @staticmethod
    def fake_quantize(weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
                      zero_point: float, axis: int | None, dtype: Any, /,
                      out: np.ndarray | None = None) -> np.ndarray:
        codes = cell_codes(weights, alpha, beta, bits, axis)
        result = decode(codes, alpha, beta, zero_point, axis, np.dtype(dtype))
        if out is None:
            return result
        np.copyto(out, result)
        return out


DEFINITION: Kernels = _Definition()
"""The default step implementations: :func:`ul2q_ref.stats.moments`, :func:`cell_codes`,
:func:`ul2q_ref.codebook.decode`, and the last two in a row."""


# --------------------------------------------------------------------------- the steps


class Statistics(NamedTuple):
    """The statistics step's result, one float64 entry per channel."""

    mean: np.ndarray
    std: np.ndarray
    lam: np.ndarray
    """The step λ in units of σ (λ_k* for every channel of the definition)."""
    alpha: np.ndarray
    beta: np.ndarray


def code_book(mean: np.ndarray, std: np.ndarray, lam: np.ndarray) -> Statistics:
    r"""The code book of each channel from its (μ, σ) and step λ: α = λσ, β = μ.

    For σ within a factor λ of the largest float64 α overflows to +inf; the representability
    check then refuses the code book (:func:`ul2q_ref.codebook.check_representable`).
    """
    with np.errstate(over="ignore"):
        alpha = lam * std
    return Statistics(mean, std, lam, alpha, mean)


def statistics(weights: np.ndarray, bits: int, axis: int | None,
               kernels: Kernels = DEFINITION) -> Statistics:
    r"""The statistics step: μ, σ, λ_k* and the code book (α, β) of each channel.

    .. math::
        β = μ, \qquad α = λ_k^*\,σ

    with μ, σ from ``kernels.moments`` (:func:`ul2q_ref.stats.moments` by default) and λ_k*
    from :func:`ul2q_ref.gaussian.optimal_lambda`.
    """
    mean, std = kernels.moments(weights, axis)
    return code_book(mean, std, _lambda_vector(bits, mean.shape[0]).view())


@functools.lru_cache(maxsize=256)
def _lambda_vector(bits: int, channels: int) -> np.ndarray:
    """λ_k* once per channel, read-only (made once per (k, channels): every call of the
    statistics step on a layer asks for the same vector). Callers get a view, which cannot
    be made writeable again, so no caller can change the cached values."""
    lam = np.full(channels, optimal_lambda(bits))
    lam.setflags(write=False)
    return lam


def encode(weights: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
           axis: int | None, kernels: Kernels = DEFINITION) -> np.ndarray:
    """The encode step: :func:`cell_codes` (by ``kernels.encode``), as ``code_dtype(bits)``."""
    return kernels.encode(weights, alpha, beta, bits, axis, code_dtype(bits))


def dequantize(codes: np.ndarray, alpha: np.ndarray, beta: np.ndarray, axis: int | None,
               dtype: Any, kernels: Kernels = DEFINITION) -> np.ndarray:
    r"""The decode step: ŵ = α(q − ½) + β (:func:`ul2q_ref.codebook.decode` with z = ½)."""
    return kernels.decode(codes, alpha, beta, ZERO_POINT, axis, np.dtype(dtype))


def _check_levels(book: Statistics, bits: int, dtype: Any) -> None:
    """:func:`ul2q_ref.codebook.check_representable` for μL2Q's extreme codes and z = ½."""
    check_representable(book.alpha, book.beta, ZERO_POINT, *code_range(bits), dtype)


def quantize(weights: np.ndarray, bits: int, axis: int | None, dtype: Any,
             kernels: Kernels = DEFINITION) -> Quantized:
    """μL2Q: the statistics step, then the encode step; `dtype` is the reconstruction's.

    A code book with a level α(q − ½) + β that is not finite in `dtype` is refused before
    the encode step (:func:`ul2q_ref.codebook.check_representable`).
    """
    book = statistics(weights, bits, axis, kernels)
    _check_levels(book, bits, dtype)
    return Quantized._trusted(  # its parts are valid by construction: nothing to re-check
        codes=encode(weights, book.alpha, book.beta, bits, axis, kernels),
        alpha=public_parameter(book.alpha, axis),
        beta=public_parameter(book.beta, axis),
        zero_point=ZERO_POINT,
        bits=bits,
        lam=float(book.lam[0]),
        axis=axis,
        scheme="ul2q",
        dtype=np.dtype(dtype),
    )


def fake_quantize(weights: np.ndarray, bits: int, axis: int | None, dtype: Any,
                  kernels: Kernels = DEFINITION, *, range_dtype: Any = None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """The reconstruction ŵ of `weights` in `dtype`: all three steps, the forward pass of QAT.

    Before the levels are computed, :func:`ul2q_ref.codebook.check_representable` refuses a
    code book with a level that is not finite in `range_dtype` (default `dtype`; the PyTorch
    bridge passes float32 for bfloat16, whose range it shares). ``kernels.fake_quantize``
    runs the encode and decode steps in one pass, into `out` when it is given (an array of
    the result's shape and dtype, which the PyTorch bridge reuses from step to step).
    """
    book = statistics(weights, bits, axis, kernels)
    _check_levels(book, bits, dtype if range_dtype is None else range_dtype)
    if out is None:
        return kernels.fake_quantize(weights, book.alpha, book.beta, bits, ZERO_POINT, axis,
                                     np.dtype(dtype))
    return kernels.fake_quantize(weights, book.alpha, book.beta, bits, ZERO_POINT, axis,
                                 np.dtype(dtype), out)


__all__ = [
    "DEFINITION",
    "ZERO_POINT",
    "Kernels",
    "Statistics",
    "cell_codes",
    "code_book",
    "dequantize",
    "encode",
    "fake_quantize",
    "quantize",
    "statistics",
]
