"""The public layer: check the input once, resolve the backend and the profile, run the steps.

Every function a user calls (re-exported by :mod:`ul2q_ref`) lives here and does three
things, in this order:

1. validate: the input contract of :mod:`ul2q_ref._validate` (finite, non-empty,
   native-order float32/float64 weights; k in 1..16; ``axis`` in range; α ≥ 0 and β
   finite), with one-line errors naming the argument;
2. resolve: ``backend`` picks the kernel module (:func:`ul2q_ref.kernels.select`: the same
   meaning under every profile) and ``profile`` picks the profile record
   (:mod:`ul2q_ref.profiles`);
3. compute: the steps of the definition (:mod:`ul2q_ref.ul2q`, :mod:`ul2q_ref.codebook`),
   with the kernels of the chosen backend doing the loops, then the public form of the
   result (α, β scalars for a whole tensor, read-only vectors per channel).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import codebook, gaussian, profiles, schemes, ul2q
from ._channels import channel_count
from ._validate import (
    FinitenessChecked,
    as_weights,
    check_axis,
    check_bits,
    output_dtype,
)
from .codebook import (
    Quantized,
    UnrepresentableError,
    channel_vector,
    check_representable,
    public_parameter,
)
from .gaussian import LambdaRow
from .kernels import select

# --------------------------------------------------------------------------- statistics


def moments(
    w: Any, axis: int | None = None, *, backend: str = "auto"
) -> tuple[np.float64 | np.ndarray, np.float64 | np.ndarray]:
    r"""Mean and population standard deviation of `w`, computed in float64.

    The corrected two-pass algorithm of :func:`ul2q_ref.stats.moments`:

    .. math::
        μ = \frac{1}{n}\sum_i w_i, \qquad
        σ = \sqrt{\frac{1}{n}\Big(\sum_i d_i^2 - \frac{1}{n}\big(\sum_i d_i\big)^2\Big)},
        \quad d_i = w_i - μ

    Parameters
    ----------
    w : array_like
        Real weights (float or integer); not modified.
    axis : int, optional
        The channel axis: one (μ, σ) per index along it, each over all the other axes.
        None (default) gives one (μ, σ) for the whole tensor.
    backend : {"auto", "fast", "reference"}
        Which implementation computes it; see :mod:`ul2q_ref.kernels`.

    Returns
    -------
    mean, std : numpy.float64 or numpy.ndarray
        Scalars for ``axis=None``, else read-only float64 vectors with one entry per channel.
    """
    kernels = FinitenessChecked(select(backend))  # the NaN/±inf check rides on μ, σ
    weights = as_weights(w, check_finite=False)
    channel_axis = check_axis(axis, weights.ndim)
    mean, std = kernels.moments(weights, channel_axis)
    return public_parameter(mean, channel_axis), public_parameter(std, channel_axis)


# --------------------------------------------------------------------------- μL2Q


def quantize(
    w: Any,
    bits: int,
    *,
    axis: int | None = None,
    backend: str = "auto",
    profile: str = "exact",
) -> Quantized:
    """Quantise `w` to k-bit μL2Q codes with the exact optimal step λ_k*.

    Parameters
    ----------
    w : array_like
        Real weights (float or integer); not modified.
    bits : int
        The bit width k, 1 to 16.
    axis : int, optional
        The channel axis for per-channel (α, β) (e.g. 0 for a convolution's output channels);
        None (default) quantises the whole tensor with one (α, β).
    backend : {"auto", "fast", "reference"}
        Which implementation computes it; see :mod:`ul2q_ref.kernels`. ``"fast"`` needs the
        compiled extension under every profile; the caffe profile's float32 arithmetic has
        no compiled kernels and always runs its NumPy definition.
    profile : {"exact", "paper", "caffe"}
        ``"exact"`` (default) is the definition of :mod:`ul2q_ref.ul2q`. ``"paper"`` and
        ``"caffe"`` reproduce the λ and arithmetic of the paper and of the published Caffe
        code, defects included (:mod:`ul2q_ref.profiles`, docs/crosscheck.md). The Caffe
        code has one (α, μ) per blob: ``profile="caffe"`` refuses an `axis`.

    Returns
    -------
    Quantized
        Codes (int8 for k ≤ 7, int16 up to k = 15, int32 at k = 16) with α = λ_k* σ, β = μ,
        z = ½. Other profiles return a :class:`~ul2q_ref.profiles.ProfileQuantized`, whose
        ``dequantize`` method decodes the way that profile does.
    """
    if profile != "exact":
        return _with_profile(w, bits, axis, backend, profile)
    return ul2q.quantize(*_exact_input(w, bits, axis, backend))


def fake_quantize(
    w: Any,
    bits: int,
    *,
    axis: int | None = None,
    backend: str = "auto",
    profile: str = "exact",
) -> np.ndarray:
    """The μL2Q reconstruction ŵ of `w`, with w's shape and float dtype.

    Equal to ``quantize(w, bits, axis=axis, profile=profile).dequantize()``; integer input
    gives float64. This is the forward pass of quantisation-aware training.
    """
    if profile != "exact":
        return _with_profile(w, bits, axis, backend, profile).dequantize()
    return ul2q.fake_quantize(*_exact_input(w, bits, axis, backend))


def _exact_input(w: Any, bits: Any, axis: Any, backend: str
                 ) -> tuple[np.ndarray, int, int | None, np.dtype, FinitenessChecked]:
    """The arguments of :func:`ul2q_ref.ul2q.quantize` and ``fake_quantize`` from what the
    user passed: weights, k, the channel axis, the reconstruction's dtype, and the kernels of
    `backend` with the finiteness check riding on the moments (one pass over w fewer)."""
    kernels = FinitenessChecked(select(backend))
    weights = as_weights(w, check_finite=False)
    bits = check_bits(bits)
    channel_axis = check_axis(axis, weights.ndim)
    return weights, bits, channel_axis, output_dtype(weights, w), kernels


def _with_profile(
    w: Any, bits: int, axis: int | None, backend: str, profile: str
) -> Quantized:
    """:func:`quantize` under a non-exact profile, with the backend resolved as everywhere."""
    record = profiles.get(profile)
    kernels = select(backend)
    weights = as_weights(w)
    dtype = output_dtype(weights, w)
    bits = check_bits(bits)
    channel_axis = check_axis(axis, weights.ndim)
    if channel_axis is not None and not record.per_channel:
        raise ValueError(
            f"profile={profile!r} has no per-channel mode (the Caffe implementation keeps one "
            f"(α, μ) per blob); quantize with axis=None, or use profile='exact' or 'paper' "
            f"with axis={axis!r}"
        )
    return profiles.quantize_with_profile(record, record.prepare(weights), bits, channel_axis,
                                          dtype, kernels)  # Quantized checks its levels


def encode(
    w: Any,
    alpha: Any,
    beta: Any,
    bits: int,
    *,
    axis: int | None = None,
    backend: str = "auto",
) -> np.ndarray:
    r"""The μL2Q codes of `w` for a given code book (α, β): the encode step alone.

    .. math::
        q = \mathrm{clip}(\lfloor (w - β)/α \rfloor + 1,\ 1 - 2^{k-1},\ 2^{k-1}),
        \qquad q = 1 \text{ where } α = 0

    Useful to check another implementation's encoder bit for bit when its statistics were
    computed differently.

    Parameters
    ----------
    w : array_like
        Real weights; not modified.
    alpha, beta : float or array_like
        The scale α ≥ 0 and offset β: scalars, or one per channel along `axis`.
    bits : int
        The bit width k, 1 to 16.
    axis : int, optional
        The channel axis of per-channel α and β.
    backend : {"auto", "fast", "reference"}
        Which implementation computes it.
    """
    weights = as_weights(w)
    bits = check_bits(bits)
    channel_axis = check_axis(axis, weights.ndim)
    channels = channel_count(weights.shape, channel_axis)
    alpha = _code_book_parameter(alpha, "alpha", channels, channel_axis)
    beta = _code_book_parameter(beta, "beta", channels, channel_axis)
    if np.any(alpha < 0):
        raise ValueError("alpha must be >= 0 (a scale), got a negative value")
    return ul2q.encode(weights, alpha, beta, bits, channel_axis, select(backend))


def _code_book_parameter(
    value: Any, name: str, channels: int, axis: int | None
) -> np.ndarray:
    """Validate α or β: finite, and a scalar or (with `axis`) one value per channel."""
    array = as_weights(value, name=name)
    if axis is None:
        if array.size != 1:
            raise ValueError(f"{name} must be a scalar without axis, got shape {array.shape}")
        return channel_vector(array, 1)
    if array.size == 1:
        return channel_vector(array, channels)
    if array.ndim != 1 or array.size != channels:
        raise ValueError(
            f"{name} must hold one value per channel ({channels} along axis {axis}), "
            f"got shape {array.shape}"
        )
    return channel_vector(array, channels)


def quantize_with(
    scheme: str, w: Any, bits: int, *, axis: int | None = None, backend: str = "auto"
) -> Quantized:
    """Quantise `w` with the scheme called `scheme` (a key of :data:`ul2q_ref.schemes.SCHEMES`).

    A scheme whose steps have compiled kernels (μL2Q) runs them through :func:`quantize`
    with `backend`; the others run their NumPy steps (the backend is still checked).
    """
    record = schemes.get(scheme)
    if record.uses_kernels:
        return quantize(w, bits, axis=axis, backend=backend)
    select(backend)
    return schemes.quantize_with(scheme, w, bits, axis=axis)  # Quantized checks its levels


def fake_quantize_with(
    scheme: str, w: np.ndarray, bits: int, *, backend: str = "auto"
) -> np.ndarray:
    """The reconstruction of float `w` under `scheme`, per tensor, in w's dtype.

    μL2Q runs the fused kernel (:func:`fake_quantize`); the other schemes decode their
    :class:`Quantized` result. Both equal ``quantize_with(...).dequantize(w.dtype)``.
    """
    if schemes.get(scheme).uses_kernels:
        return fake_quantize(w, bits, backend=backend)
    return quantize_with(scheme, w, bits, backend=backend).dequantize(np.asarray(w).dtype)


# --------------------------------------------------------------------------- decoding


def dequantize(quantized: Quantized, dtype: Any = None, *, backend: str = "auto") -> np.ndarray:
    r"""Decode a :class:`Quantized`: ŵ = α·(q − z) + β.

    (q − z) is exact in float64, the product and the sum are each rounded once in float64,
    and the result is rounded once to `dtype` (:func:`ul2q_ref.codebook.decode`);
    per-channel α and β broadcast along ``quantized.axis``.

    Parameters
    ----------
    quantized : Quantized
        The codes and code book.
    dtype : dtype, optional
        The float dtype of the result; default ``quantized.dtype``.
    backend : {"auto", "fast", "reference"}
        Which implementation decodes; see :mod:`ul2q_ref.kernels`.
    """
    if not isinstance(quantized, Quantized):
        raise TypeError(f"quantized must be a Quantized, got {type(quantized).__name__}")
    return codebook.dequantize(quantized, dtype, backend=backend)


# --------------------------------------------------------------------------- the optimal step


LAMBDA_MAX = 1e100
"""The largest step λ (in units of σ) :func:`expected_loss` and its derivative accept.

Useful steps are below 2; up to 1e100 the loss (≈ λ²/4 for huge λ) is computed correctly
(tests/test_hardening.py compares it with mpmath); beyond, intermediate squares overflow, so
larger λ is a ValueError rather than an OverflowError or a wrong number."""


def _check_lam(lam: Any) -> float:
    value = float(lam)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"lam must be a finite positive step, got {lam!r}")
    if value > LAMBDA_MAX:
        raise ValueError(f"lam must be at most {LAMBDA_MAX:g} (a step in units of σ; useful "
                         f"steps are below 2), got {lam!r}")
    return value


def expected_loss(lam: float, bits: int) -> float:
    """The expected L2 loss L(λ) of the k-bit quantiser on N(0, 1).

    See :func:`ul2q_ref.gaussian.expected_loss`; `lam` must be a step 0 < λ ≤
    :data:`LAMBDA_MAX` (1e100) and `bits` an integer from 1 to 16 (else ValueError).
    """
    return gaussian.expected_loss(_check_lam(lam), check_bits(bits))


def expected_loss_derivative(lam: float, bits: int) -> float:
    """dL/dλ (:func:`ul2q_ref.gaussian.expected_loss_derivative`), for λ > 0 and k in 1..16."""
    return gaussian.expected_loss_derivative(_check_lam(lam), check_bits(bits))


def optimal_lambda(bits: int) -> float:
    """The exact optimal step λ_k* for k-bit μL2Q (:func:`ul2q_ref.gaussian.optimal_lambda`)."""
    return gaussian.optimal_lambda(check_bits(bits))


def lambda_table(bits: Iterable[int] = range(1, 17)) -> list[LambdaRow]:
    """Exact λ_k* and loss for each k in `bits`, beside the paper's Table I where it has one
    (:func:`ul2q_ref.gaussian.lambda_table`)."""
    return gaussian.lambda_table([check_bits(k) for k in bits])


__all__ = [
    "UnrepresentableError",
    "check_representable",
    "dequantize",
    "encode",
    "expected_loss",
    "expected_loss_derivative",
    "fake_quantize",
    "fake_quantize_with",
    "lambda_table",
    "moments",
    "optimal_lambda",
    "quantize",
    "quantize_with",
]
