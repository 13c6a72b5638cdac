r"""μL2Q quantisation: normalise, split the line uniformly with step λ_k, take cell centres.

For a weight tensor w with mean μ and standard deviation σ (:func:`ul2q_ref.moments`):

.. math::
    β = μ, \qquad α = λ_k^*\,σ, \qquad
    q = \mathrm{clip}\Big(\Big\lfloor \frac{w - β}{α} \Big\rfloor + 1,\ 1 - 2^{k-1},\ 2^{k-1}\Big),
    \qquad \hat w = α\,(q - ½) + β

(w − β)/α = φ/λ_k is the normalised value in units of the step. The cells are half-open,
[α(q − 1), αq) around β, so a value exactly on a threshold goes to the upper cell; the floor,
the division and the subtraction are all evaluated in float64. A tensor with σ = 0 has
α = 0: every code is 1 and ŵ = β exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backends
from ._channels import broadcastable, per_channel_result
from ._validate import as_weights, check_axis, check_bits, output_dtype
from .codebook import Quantized, code_dtype, code_range, reference_decode
from .gaussian import optimal_lambda
from .stats import reference_moments

ZERO_POINT = 0.5
"""μL2Q's levels sit at cell centres: ŵ = α(q − ½) + β."""


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
        Which implementation computes it; see :mod:`ul2q_ref.backends`. Only ``"exact"``
        has compiled kernels; the other profiles always run their NumPy definition.
    profile : {"exact", "paper", "caffe"}
        ``"exact"`` (default) is the definition above. ``"paper"`` and ``"caffe"`` reproduce
        the λ and arithmetic of the paper and of the published Caffe code, defects included
        (:mod:`ul2q_ref.profiles`, docs/crosscheck.md).

    Returns
    -------
    Quantized
        Codes (int8 for k ≤ 7, int16 up to k = 15, int32 at k = 16) with α = λ_k* σ, β = μ, z = ½.
        Other profiles return a :class:`~ul2q_ref.profiles.ProfileQuantized`, whose
        ``dequantize`` method decodes the way that profile does.
    """
    if profile != "exact":
        return _with_profile(w, bits, axis, backend, profile)
    weights = as_weights(w)
    bits = check_bits(bits)
    channel_axis = check_axis(axis, weights.ndim)
    kernels = backends.fast_kernels(backend)
    if kernels is not None:
        mean, std = kernels.moments(weights, channel_axis)
    else:
        mean, std = reference_moments(weights, channel_axis)
    lam = optimal_lambda(bits)
    alpha = lam * std
    encode_kernel = kernels.encode if kernels is not None else reference_encode
    codes = encode_kernel(weights, alpha, mean, bits, channel_axis)
    return Quantized(
        codes=codes,
        alpha=alpha,
        beta=mean,
        zero_point=ZERO_POINT,
        bits=bits,
        lam=lam,
        axis=channel_axis,
        scheme="ul2q",
        dtype=output_dtype(weights, w),
    )


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
    weights = as_weights(w)
    bits = check_bits(bits)
    channel_axis = check_axis(axis, weights.ndim)
    dtype = output_dtype(weights, w)
    kernels = backends.fast_kernels(backend)
    if kernels is not None:
        mean, std = kernels.moments(weights, channel_axis)
        alpha = optimal_lambda(bits) * std
        return kernels.fake_quantize(weights, alpha, mean, bits, channel_axis, dtype)
    quantized = quantize(weights, bits, axis=channel_axis, backend="reference")
    return reference_decode(
        quantized.codes, quantized.alpha, quantized.beta, ZERO_POINT, channel_axis, dtype
    )


def _with_profile(
    w: Any, bits: int, axis: int | None, backend: str, profile: str
) -> Quantized:
    """:func:`quantize` under a non-exact profile (always the NumPy definition)."""
    from . import profiles  # imported here: profiles builds on this module

    profiles.check_profile(profile)
    if backend not in backends.BACKENDS:
        backends.fast_kernels(backend)  # raises the usual ValueError
    return profiles.quantize_with_profile(w, bits, axis=axis, profile=profile)


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
    channels = 1 if channel_axis is None else weights.shape[channel_axis]
    alpha = _code_book_parameter(alpha, "alpha", channels, channel_axis)
    beta = _code_book_parameter(beta, "beta", channels, channel_axis)
    if np.any(np.asarray(alpha) < 0):
        raise ValueError("alpha must be >= 0 (a scale), got a negative value")
    kernels = backends.fast_kernels(backend)
    encode_kernel = kernels.encode if kernels is not None else reference_encode
    return encode_kernel(weights, alpha, beta, bits, channel_axis)


def _code_book_parameter(
    value: Any, name: str, channels: int, axis: int | None
) -> np.float64 | np.ndarray:
    """Validate α or β: finite, and a scalar or (with `axis`) one value per channel."""
    array = as_weights(value, name=name)
    if axis is None:
        if array.size != 1:
            raise ValueError(f"{name} must be a scalar without axis, got shape {array.shape}")
        return np.float64(array.reshape(-1)[0])
    if array.size == 1:
        array = np.full(channels, array.reshape(-1)[0], dtype=np.float64)
    if array.ndim != 1 or array.size != channels:
        raise ValueError(
            f"{name} must hold one value per channel ({channels} along axis {axis}), "
            f"got shape {array.shape}"
        )
    return per_channel_result(array.astype(np.float64), axis)


def reference_encode(
    weights: np.ndarray, alpha: Any, beta: Any, bits: int, axis: int | None
) -> np.ndarray:
    """The reference computation behind :func:`encode`, for validated input."""
    lowest, highest = code_range(bits)
    scale = broadcastable(alpha, weights.ndim, axis)
    offset = broadcastable(beta, weights.ndim, axis)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        steps = (weights.astype(np.float64) - offset) / scale
        codes = np.clip(np.floor(steps) + 1.0, lowest, highest)
    codes = np.where(scale == 0.0, 1.0, codes)
    return codes.astype(code_dtype(bits))


__all__ = ["ZERO_POINT", "encode", "fake_quantize", "quantize", "reference_encode"]
