"""The NumPy twins of the compiled kernels: the same names, signatures, checks and results.

Each function checks the kernel calling convention (:mod:`ul2q_ref.kernels`) exactly as the
Cython kernel of the same name does, raising the same exception types, and then runs the
definition: :func:`ul2q_ref.stats.moments`, :func:`ul2q_ref.ul2q.cell_codes` and
:func:`ul2q_ref.codebook.decode`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import codebook, stats, ul2q
from .._backend import CODE_DTYPES, FLOAT_DTYPES, WEIGHT_DTYPES
from .._channels import channel_count


def _check_weights(weights: Any, axis: int | None) -> None:
    if not isinstance(weights, np.ndarray) or weights.dtype not in WEIGHT_DTYPES \
            or weights.size == 0:
        raise TypeError("weights must be a non-empty native float32 or float64 numpy array")
    _check_axis(weights, axis)


def _check_axis(array: np.ndarray, axis: int | None) -> None:
    if axis is not None and not 0 <= axis < array.ndim:
        raise ValueError(f"axis must be None or in 0..{array.ndim - 1}, got {axis!r}")


def _check_code_book(alpha: Any, beta: Any, channels: int) -> None:
    for name, values in (("alpha", alpha), ("beta", beta)):
        if (not isinstance(values, np.ndarray) or values.dtype != np.float64
                or values.ndim != 1 or values.shape[0] != channels):
            raise ValueError(f"{name} must be a 1-D float64 array of {channels} value(s)")


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits!r}")


def _check_float_dtype(dtype: Any) -> None:
    if np.dtype(dtype) not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float16, float32 or float64, got {dtype!r}")


def moments(weights: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """μ and σ of every channel (float64 vectors): :func:`ul2q_ref.stats.moments`."""
    _check_weights(weights, axis)
    return stats.moments(weights, axis)


def encode(
    weights: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    bits: int,
    axis: int | None,
    dtype: Any,
) -> np.ndarray:
    """The μL2Q codes for (α, β), as `dtype` (int8/int16/int32): :func:`ul2q_ref.ul2q.cell_codes`.
    """
    _check_weights(weights, axis)
    _check_bits(bits)
    if np.dtype(dtype) not in CODE_DTYPES:
        raise TypeError(f"dtype must be int8, int16 or int32, got {dtype!r}")
    _check_code_book(alpha, beta, channel_count(weights.shape, axis))
    return ul2q.cell_codes(weights, alpha, beta, bits, axis).astype(dtype, copy=False)


def decode(
    codes: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    zero_point: float,
    axis: int | None,
    dtype: Any,
) -> np.ndarray:
    """ŵ = α(q − z) + β rounded once to `dtype`: :func:`ul2q_ref.codebook.decode`."""
    if not isinstance(codes, np.ndarray) or codes.dtype not in CODE_DTYPES:
        raise TypeError("codes must be an int8, int16 or int32 numpy array")
    _check_axis(codes, axis)
    _check_float_dtype(dtype)
    _check_code_book(alpha, beta, channel_count(codes.shape, axis))
    return codebook.decode(codes, alpha, beta, float(zero_point), axis, np.dtype(dtype))


def _check_out(out: Any, weights: np.ndarray, dtype: Any) -> None:
    """`out` must be a writeable array of the result's shape and dtype, apart from `weights`."""
    if (not isinstance(out, np.ndarray) or out.dtype != np.dtype(dtype)
            or out.shape != weights.shape or not out.flags.writeable):
        raise ValueError(f"out must be a writeable {np.dtype(dtype)} array of shape "
                         f"{weights.shape}")
    if np.may_share_memory(out, weights):
        raise ValueError("out must not share memory with weights")


def fake_quantize(
    weights: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    bits: int,
    zero_point: float,
    axis: int | None,
    dtype: Any,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``decode(encode(w, α, β, k, axis), α, β, z, axis, dtype)``: the reconstruction ŵ,
    written into `out` when one is given (and `out` returned)."""
    _check_weights(weights, axis)
    _check_bits(bits)
    _check_float_dtype(dtype)
    _check_code_book(alpha, beta, channel_count(weights.shape, axis))
    if out is not None:
        _check_out(out, weights, dtype)
    return ul2q.DEFINITION.fake_quantize(weights, alpha, beta, bits, float(zero_point), axis,
                                         dtype, out)


__all__ = ["CODE_DTYPES", "FLOAT_DTYPES", "WEIGHT_DTYPES", "decode", "encode", "fake_quantize",
           "moments"]
