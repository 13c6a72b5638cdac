r"""The quantised result shared by every scheme: an affine code book ŵ = α·(q − z) + β.

μL2Q and the comparison schemes differ in how they choose the integer codes q, the scale α,
the offset β and the zero point z, but all of them reconstruct a weight the same way:

.. math::
    \hat w = α\,(q - z) + β

with z = ½ for μL2Q (its levels sit at cell centres, half a step off the integers) and
z = 0 for binary, ternary, fixed point and clip. One result type, :class:`Quantized`, and one
decoder, :func:`decode`, therefore serve every scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

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


def public_parameter(values: np.ndarray, axis: int | None) -> np.float64 | np.ndarray:
    """The public form of a per-channel vector: a float64 scalar without an axis, else a
    read-only float64 vector with one entry per channel."""
    if axis is None:
        return np.float64(np.asarray(values).reshape(-1)[0])
    result = np.array(values, dtype=np.float64).reshape(-1)
    result.setflags(write=False)
    return result


def channel_vector(values: Any, channels: int) -> np.ndarray:
    """The internal form of α or β: a float64 vector with `channels` entries.

    A scalar (or a single value) is repeated for every channel.
    """
    vector = np.asarray(values, dtype=np.float64).reshape(-1)
    if vector.size != channels:
        vector = np.broadcast_to(vector, (channels,))
    return np.ascontiguousarray(vector)


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
        """The reconstruction ŵ = α·(q − z) + β, in `dtype` (default: :attr:`dtype`).

        The same as :func:`ul2q_ref.dequantize` (``backend`` chooses the implementation).
        """
        return public_dequantize(self, dtype, backend=backend)


def _definition_dequantize(quantized: Quantized, dtype: Any = None, *, backend: str = "auto"
                           ) -> np.ndarray:
    """:func:`decode` of a :class:`Quantized` (what :mod:`ul2q_ref.api` replaces)."""
    channels = 1 if quantized.axis is None else quantized.shape[quantized.axis]
    return decode(quantized.codes, channel_vector(quantized.alpha, channels),
                  channel_vector(quantized.beta, channels), quantized.zero_point,
                  quantized.axis, np.dtype(quantized.dtype if dtype is None else dtype))


public_dequantize: Callable[..., np.ndarray] = _definition_dequantize
"""The decoder behind :meth:`Quantized.dequantize`.

The public layer :mod:`ul2q_ref.api` replaces it, when the package is imported, with
:func:`ul2q_ref.dequantize` (checks, then the chosen backend's kernel): this module is the
definition and does not import the layer built on it."""


def decode(
    codes: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    zero_point: float,
    axis: int | None,
    dtype: np.dtype,
) -> np.ndarray:
    r"""The affine code book's reconstruction ŵ = α·(q − z) + β, rounded once to `dtype`.

    (q − z) is exact in float64, the product and the sum are each rounded once in float64,
    and the result is rounded once to `dtype`; per-channel α and β (one float64 per
    channel along `axis`, a single entry without one) broadcast along `axis`.
    """
    assert codes.dtype.kind == "i" and np.dtype(dtype).kind == "f"
    scale = broadcastable(alpha, codes.ndim, axis)
    offset = broadcastable(beta, codes.ndim, axis)
    reconstruction = scale * (codes.astype(np.float64) - zero_point) + offset
    return np.asarray(reconstruction).astype(dtype, copy=False)  # 0-d stays an array
