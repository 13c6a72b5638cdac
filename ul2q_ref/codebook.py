r"""The quantised result shared by every scheme: an affine code book ŵ = α·(q − z) + β.

μL2Q and the comparison schemes differ in how they choose the integer codes q, the scale α,
the offset β and the zero point z, but all of them reconstruct a weight the same way:

.. math::
    \hat w = α\,(q - z) + β

with z = ½ for μL2Q (its levels sit at cell centres, half a step off the integers) and
z = 0 for binary, ternary, fixed point and clip. One result type, :class:`Quantized`, and one
decoder, :func:`dequantize`, therefore serve every scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backends
from ._channels import broadcastable


def code_range(bits: int) -> tuple[int, int]:
    """The μL2Q code range for k bits: q ∈ {1 − 2^(k−1), …, 2^(k−1)}."""
    half = 2 ** (bits - 1)
    return 1 - half, half


def code_dtype(bits: int) -> np.dtype:
    """The smallest signed integer dtype holding k-bit μL2Q codes.

    int8 for k ≤ 7, int16 for 8 ≤ k ≤ 15 and int32 for k = 16. The μL2Q range
    {1 − 2^(k−1), …, 2^(k−1)} has one more positive value than a two's complement k-bit
    integer, so its largest code 2^(k−1) (128 at k = 8, 32768 at k = 16) needs the next
    wider type. Two's complement schemes such as fixed point and clip fit k-bit codes in a
    k-bit type; they use :func:`storage_dtype` with their own range.
    """
    return storage_dtype(*code_range(bits))


def storage_dtype(lowest: int, highest: int) -> np.dtype:
    """The smallest of int8/int16/int32 that holds every integer in ``lowest..highest``."""
    for candidate in (np.int8, np.int16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= lowest and highest <= info.max:
            return np.dtype(candidate)
    raise ValueError(f"codes {lowest}..{highest} do not fit in 32 bits")


@dataclass(frozen=True, eq=False)
class Quantized:
    r"""A quantised tensor: integer codes and the affine code book that decodes them.

    The reconstruction is ŵ = α·(q − z) + β, evaluated in float64 (per channel along
    `axis` when α and β are vectors) and rounded once to `dtype`.

    Attributes
    ----------
    codes : numpy.ndarray
        The integer codes q (int8, int16 or int32; read-only), with the input's shape.
    alpha : numpy.float64 or numpy.ndarray
        The scale α (per channel along `axis`, else a scalar).
    beta : numpy.float64 or numpy.ndarray
        The offset β.
    zero_point : float
        z: 0.5 for μL2Q, 0 for the other schemes.
    bits : int
        The bit width k the codes were made for.
    lam : float or None
        μL2Q's normalised step λ_k (α = λ_k σ); None for schemes without one.
    axis : int or None
        The channel axis of per-channel α and β, or None.
    scheme : str
        ``"ul2q"``, ``"binary"``, ``"ternary"``, ``"fixed_point"`` or ``"clip"``.
    dtype : numpy.dtype
        The dtype of the reconstruction: the input's float dtype (float64 for integers).
    """

    codes: np.ndarray
    alpha: Any
    beta: Any
    zero_point: float
    bits: int
    lam: float | None
    axis: int | None
    scheme: str
    dtype: np.dtype

    def __post_init__(self) -> None:
        if self.codes.dtype.kind != "i":
            raise TypeError(f"codes must be signed integers, got {self.codes.dtype}")
        for name in ("codes", "alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.flags.writeable:
                value = value.copy()
                value.setflags(write=False)
                object.__setattr__(self, name, value)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the quantised tensor."""
        return self.codes.shape

    def dequantize(self, dtype: Any = None, *, backend: str = "auto") -> np.ndarray:
        """The reconstruction ŵ = α·(q − z) + β, in `dtype` (default: :attr:`dtype`)."""
        return dequantize(self, dtype, backend=backend)


def dequantize(quantized: Quantized, dtype: Any = None, *, backend: str = "auto") -> np.ndarray:
    r"""Decode a :class:`Quantized`: ŵ = α·(q − z) + β.

    (q − z) is exact in float64, the product and the sum are each rounded once in float64,
    and the result is rounded once to `dtype`; per-channel α and β broadcast along
    ``quantized.axis``.

    Parameters
    ----------
    quantized : Quantized
        The codes and code book.
    dtype : dtype, optional
        The float dtype of the result; default ``quantized.dtype``.
    backend : {"auto", "fast", "reference"}
        Which implementation decodes; see :mod:`ul2q_ref.backends`.
    """
    if not isinstance(quantized, Quantized):
        raise TypeError(f"quantized must be a Quantized, got {type(quantized).__name__}")
    out_dtype = np.dtype(quantized.dtype if dtype is None else dtype)
    if out_dtype.kind != "f":
        raise TypeError(f"dtype must be a float dtype, got {out_dtype}")
    kernels = backends.fast_kernels(backend)
    args = (quantized.codes, quantized.alpha, quantized.beta, quantized.zero_point,
            quantized.axis, out_dtype)
    if kernels is not None:
        return kernels.decode(*args)
    return reference_decode(*args)


def reference_decode(
    codes: np.ndarray,
    alpha: Any,
    beta: Any,
    zero_point: float,
    axis: int | None,
    dtype: np.dtype,
) -> np.ndarray:
    """The reference computation behind :func:`dequantize`."""
    scale = broadcastable(alpha, codes.ndim, axis)
    offset = broadcastable(beta, codes.ndim, axis)
    reconstruction = scale * (codes.astype(np.float64) - zero_point) + offset
    return np.asarray(reconstruction).astype(dtype, copy=False)  # 0-d stays an array
