"""The input contract shared by every public function.

Every public entry point (:mod:`ul2q_ref.api`, the scheme functions) passes its arguments
through these checks first, so that bad input fails early with a message that names the
argument and says what was wrong, and so that the definition further down only ever sees a
finite, non-empty, native-byte-order float32 or float64 array. Nothing here modifies the
caller's data: conversions always make a new array.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from . import _backend

MAX_BITS = 16
"""The widest bit width supported. k-bit μL2Q codes span 1 − 2^(k−1) … 2^(k−1), one more
positive value than k-bit two's complement: k = 16 reaches 32768 and is stored in int32
(:func:`ul2q_ref.codebook.code_dtype`)."""

_EXACT_INT_LIMIT = 2**53
"""Integers of larger magnitude are not all representable in float64."""


def as_weights(w: Any, name: str = "w", *, check_finite: bool = True) -> np.ndarray:
    """Return `w` as a finite, non-empty float32 or float64 array in native byte order.

    float32 and float64 arrays are used as they are (a view, never written to); float16
    becomes float32 and integers become float64, both exactly. Big-endian input is converted
    to native byte order. A list or scalar is converted with ``np.asarray``.

    ``check_finite=False`` leaves out the scan for NaN and ±inf, for callers that compute the
    moments next and let :func:`check_finite_given_moments` decide from them whether the scan
    is needed (one pass over the weights fewer).

    Raises
    ------
    TypeError
        For complex, boolean, object, string or extended-precision input.
    ValueError
        For empty input, NaN or ±inf (with how many and where the first is), and integers
        too large to be represented exactly in float64.
    """
    try:
        array = np.asarray(w)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a real numeric array-like ({error})") from None
    kind = array.dtype.kind
    if kind == "b":
        raise TypeError(f"{name} has boolean dtype; pass real numbers (float or integer)")
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {array.dtype}; pass real numbers")
    if kind not in "fiu":
        raise TypeError(
            f"{name} must hold real numbers, got dtype {array.dtype} (kind {kind!r})"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); it needs at least one value")
    if kind == "f":
        if array.dtype.itemsize > 8:
            raise TypeError(
                f"{name} has extended-precision dtype {array.dtype}; convert it to float64 "
                "explicitly (this library computes in float64)"
            )
        if array.dtype.itemsize < 4:
            array = array.astype(np.float32)
        elif not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if check_finite:
            _check_finite(array, name)
        return array
    # integers: exact in float64 only up to 2**53 in magnitude
    if array.dtype.itemsize >= 8:
        largest = max(abs(int(array.min())), abs(int(array.max())))
        if largest > _EXACT_INT_LIMIT:
            raise ValueError(
                f"{name} holds the integer {largest}, which float64 cannot represent exactly "
                f"(limit 2**53); convert it to float yourself if the rounding is acceptable"
            )
    return array.astype(np.float64)


def _check_finite(array: np.ndarray, name: str) -> None:
    """Raise ValueError naming how many values of `array` are NaN or ±inf and where."""
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = finite.size - int(np.count_nonzero(finite))
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    value = array[first] if first else array[()]
    where = f"index {first}" if first else "the only element"
    raise ValueError(
        f"{name} contains {bad} non-finite value{'s' if bad != 1 else ''} (NaN or ±inf); "
        f"the first is {value} at {where}"
    )


def check_finite_given_moments(array: np.ndarray, mean: np.ndarray, std: np.ndarray,
                               name: str = "w") -> None:
    """The finiteness check of :func:`as_weights`, skipped where the moments prove it.

    μ and σ of a channel are sums over all its values, so a NaN or ±inf in a channel makes
    its μ or σ non-finite, except in a channel found constant (σ = 0), whose sums the kernels
    skip. So when every μ and σ is finite and every σ > 0, every value is finite; otherwise
    every value is scanned, and the error is exactly the one :func:`as_weights` raises
    (how many, and where the first is). Both kernel backends keep this property
    (``tests/test_validation.py`` places NaN and ±inf at every position of constant and
    non-constant channels).
    """
    if mean.size == 1:  # one channel: the same test on Python floats (a quarter of the cost)
        m, s = float(mean[0]), float(std[0])
        if math.isfinite(m) and math.isfinite(s) and s > 0.0:
            return
    elif np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all():
        return
    _check_finite(array, name)


class FinitenessChecked:
    """Step implementations whose moments step also makes the finiteness check.

    ``moments`` runs the wrapped ``kernels.moments`` (the NumPy twins' warnings about
    non-finite values silenced; the compiled kernels compute in C and never warn) and then
    :func:`check_finite_given_moments`; ``encode``, ``decode`` and
    ``fake_quantize`` are the wrapped kernels' own. The public layer hands this to the
    composition of :mod:`ul2q_ref.ul2q` after :func:`as_weights` with ``check_finite=False``:
    the same check, and the same error, for every backend, one pass over the weights fewer.
    """

    def __init__(self, kernels: Any) -> None:
        self.kernels = kernels
        self._warns = kernels is not _backend.fast
        self.encode = kernels.encode
        self.decode = kernels.decode
        self.fake_quantize = kernels.fake_quantize

    def moments(self, weights: np.ndarray, axis: int | None, /
                ) -> tuple[np.ndarray, np.ndarray]:
        """μ, σ per channel, after which every value of `weights` is known to be finite."""
        if self._warns:
            with np.errstate(all="ignore"):  # non-finite input is reported below, not warned
                mean, std = self.kernels.moments(weights, axis)
        else:
            mean, std = self.kernels.moments(weights, axis)
        check_finite_given_moments(weights, mean, std)
        return mean, std


def check_bits(bits: Any, name: str = "bits", low: int = 1, high: int = MAX_BITS) -> int:
    """Return `bits` as an int after checking it is an integer in ``low..high``.

    Booleans, floats (even 2.0) and strings are rejected with TypeError: a bit width is a
    count, and accepting ``True`` or ``"2"`` would hide a bug in the caller.
    """
    if isinstance(bits, bool | np.bool_) or not isinstance(bits, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer from {low} to {high}, got {bits!r} "
            f"of type {type(bits).__name__}"
        )
    value = int(bits)
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def check_axis(axis: Any, ndim: int, name: str = "axis") -> int | None:
    """Return `axis` normalised to ``0..ndim-1`` (or None), rejecting anything out of range."""
    if axis is None:
        return None
    if isinstance(axis, bool | np.bool_) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be None or an integer, got {axis!r}")
    value = int(axis)
    if not -ndim <= value < ndim:
        if ndim == 0:
            raise ValueError(f"{name}={value} is out of range: the input is 0-dimensional")
        raise ValueError(
            f"{name}={value} is out of range for an input with {ndim} dimension"
            f"{'s' if ndim != 1 else ''} (valid: {-ndim} to {ndim - 1})"
        )
    return value % ndim


def output_dtype(array: np.ndarray, original: Any) -> np.dtype:
    """The float dtype a reconstruction of `original` is returned in.

    A float input keeps its own dtype (float16 included, in native byte order); an integer
    input is reconstructed in float64, since the reconstruction is not integral.
    """
    original_dtype = getattr(original, "dtype", None)
    if original_dtype is not None and original_dtype.kind == "f":
        return np.dtype(original_dtype).newbyteorder("=")
    return array.dtype
