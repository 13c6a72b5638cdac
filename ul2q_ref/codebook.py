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

import functools
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, NamedTuple, TypeVar

import numpy as np

from . import _backend
from ._channels import broadcastable, channel_count

ZERO_POINT = 0.5
"""z = ½: μL2Q's levels sit at cell centres, ŵ = α(q − ½) + β. The one place it is defined
(:mod:`ul2q_ref.ul2q` re-exports it)."""


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


def fixed_point_range(bits: int) -> tuple[int, int]:
    """Two's complement k-bit codes: −2^(k−1) … 2^(k−1) − 1."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def clip_range(bits: int) -> tuple[int, int]:
    """Symmetric codes: −(2^(k−1) − 1) … 2^(k−1) − 1."""
    levels = 2 ** (bits - 1) - 1
    return -levels, levels


def _sign_range(bits: int) -> tuple[int, int]:
    """Binary and ternary codes: {−1, 0, 1} (binary uses ±1)."""
    return -1, 1


class CodeFormat(NamedTuple):
    """What a scheme's codes are: its bit widths, its code range at k bits, its zero point."""

    bits: tuple[int, int]
    """The bit widths the scheme's codes can be made for, (lowest, highest)."""
    code_range: Callable[[int], tuple[int, int]]
    """k ↦ (smallest code, largest code)."""
    zero_point: float
    """z of the code book ŵ = α(q − z) + β."""


CODE_FORMATS: dict[str, CodeFormat] = {
    "ul2q": CodeFormat((1, 16), code_range, ZERO_POINT),
    "binary": CodeFormat((1, 1), _sign_range, 0.0),
    "ternary": CodeFormat((2, 2), _sign_range, 0.0),
    "fixed_point": CodeFormat((1, 16), fixed_point_range, 0.0),
    "clip": CodeFormat((2, 16), clip_range, 0.0),
}
"""Every scheme's code format, by scheme name: the one owner of these facts (the scheme
records of :mod:`ul2q_ref.schemes` read theirs from here; :class:`Quantized` checks codes
against them, and cannot import the schemes, which are built on it)."""


def scheme_code_range(scheme: str, bits: int) -> tuple[int, int]:
    """The smallest and largest code `scheme` makes at `bits` bits (:data:`CODE_FORMATS`).

    μL2Q {1 − 2^(k−1), …, 2^(k−1)}; binary and ternary {−1, 0, 1} (binary uses ±1);
    fixed point {−2^(k−1), …, 2^(k−1) − 1}; clip {−(2^(k−1) − 1), …, 2^(k−1) − 1}.
    """
    return CODE_FORMATS[scheme].code_range(bits)


def check_quantized_parts(codes: Any, alpha: Any, beta: Any, zero_point: Any, bits: Any,
                          axis: Any, scheme: Any, *, allow_nan_alpha: bool = False,
                          source: str = "") -> None:
    """Raise ValueError unless the parts make a consistent quantised tensor.

    codes signed integers within `scheme`'s range at `bits`; bits an integer in the scheme's
    range (1..16 at most); axis None or in ``0..codes.ndim-1``; α and β one value (axis
    None) or one per channel; α finite and ≥ 0 (NaN allowed for the caffe profile's
    negative-variance channels with `allow_nan_alpha`); β finite; z the scheme's.
    """
    where = f"{source}: " if source else ""
    if not isinstance(scheme, str) or scheme not in CODE_FORMATS:
        raise ValueError(f"{where}unknown scheme {scheme!r} (known: {', '.join(CODE_FORMATS)})")
    code_format = CODE_FORMATS[scheme]
    low, high = code_format.bits
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or \
            not low <= bits <= high:
        span = f"{low}" if low == high else f"{low}..{high}"
        raise ValueError(f"{where}bits must be {span} for scheme {scheme}, got {bits!r}")
    codes = np.asarray(codes)
    if codes.dtype.kind != "i":
        raise ValueError(f"{where}codes must be signed integers, got {codes.dtype}")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int | np.integer)
                             or not 0 <= axis < codes.ndim):
        raise ValueError(f"{where}axis {axis!r} is out of range for codes of shape "
                         f"{codes.shape}")
    channels = 1 if axis is None else codes.shape[axis]
    for name, value in (("alpha", alpha), ("beta", beta)):
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise ValueError(f"{where}{name} must be real numbers, got {array.dtype}")
        if (axis is None and array.size != 1) or (axis is not None and array.shape !=
                                                  (channels,)):
            raise ValueError(f"{where}{name} has shape {array.shape}; expected "
                             + ("one value" if axis is None else f"({channels},), one per "
                                f"channel along axis {axis}"))
    alpha_array = np.asarray(alpha, dtype=np.float64).reshape(-1)
    nan = np.isnan(alpha_array)
    bad = ~nan & ~(np.isfinite(alpha_array) & (alpha_array >= 0))
    if bad.any() or (nan.any() and not allow_nan_alpha):
        value = alpha_array[bad][0] if bad.any() else np.nan
        raise ValueError(f"{where}alpha must be finite and >= 0, got {value}")
    if not np.isfinite(np.asarray(beta, dtype=np.float64)).all():
        raise ValueError(f"{where}beta must be finite")
    if zero_point != code_format.zero_point:
        raise ValueError(f"{where}zero point must be {code_format.zero_point} for scheme "
                         f"{scheme}, got {zero_point!r}")
    lowest, highest = code_format.code_range(int(bits))
    if codes.size and (int(codes.min()) < lowest or int(codes.max()) > highest):
        value = codes[(codes < lowest) | (codes > highest)].reshape(-1)[0]
        raise ValueError(f"{where}code {int(value)} is outside {lowest}..{highest}, the range "
                         f"of {bits}-bit {scheme}")


class UnrepresentableError(ValueError, ArithmeticError):
    """A finite input whose code book has a level the output dtype cannot hold (see
    docs/spec.md, "Numbers that cannot be represented")."""


def check_representable(alpha: Any, beta: Any, zero_point: float, lowest: int, highest: int,
                        dtype: Any) -> None:
    r"""Refuse a code book with a level that does not fit `dtype` as a finite number.

    The levels are ŵ = α(q − z) + β for every code q in ``lowest..highest``; the extreme
    ones, q = lowest and q = highest, are evaluated per channel as the decoder does (float64,
    then rounded once to `dtype`). If either is not finite — α or β not finite, or a level
    beyond the dtype's largest finite value — this raises :class:`UnrepresentableError`
    naming the dtype, the code and the level, and the remedy (quantise float64 input). α that
    is NaN (the caffe profile's negative-variance channels) is skipped: that defect is part
    of the profile. The public :class:`Quantized` constructor checks its levels against its
    dtype, :func:`dequantize` against the dtype it decodes to, and :mod:`ul2q_ref.ul2q`
    before the encode step of ``quantize`` and ``fake_quantize``; :mod:`ul2q_ref.api`
    re-exports it.
    """
    out = np.dtype(dtype)
    a = _flat_float64(alpha)
    b = _flat_float64(beta)
    if a.size == 1 == b.size:  # one code book: Python floats decide when levels are far inside
        reach = abs(float(a[0])) * max(abs(lowest - zero_point), abs(highest - zero_point))
        if reach + abs(float(b[0])) <= _quarter_of_largest(out):
            return
    b = np.broadcast_to(b, a.shape)
    for q in (lowest, highest):
        with np.errstate(over="ignore", invalid="ignore"):
            wide = a * (float(q) - zero_point) + b
            level = wide.astype(out)
        bad = ~np.isnan(a) & ~np.isfinite(level)
        if bad.any():
            channel = int(np.flatnonzero(bad)[0])
            where = "" if a.size == 1 else f" (channel {channel})"
            raise UnrepresentableError(
                f"the reconstruction does not fit {out}: the level α(q − z) + β for code "
                f"q = {q}{where} is {float(wide[channel]):.6g}, beyond {out}'s largest finite "
                f"value {float(np.finfo(out).max):.6g}; quantise float64 input (or decode "
                "with dtype=np.float64) instead"
                + (" (no float dtype holds it)" if not np.isfinite(wide[channel]) else ""))


def _flat_float64(values: Any) -> np.ndarray:
    """`values` as a 1-D float64 array (itself when it already is one: no new view)."""
    array = np.asarray(values, dtype=np.float64)
    return array if array.ndim == 1 else array.reshape(-1)


@functools.cache
def _quarter_of_largest(dtype: np.dtype) -> float:
    """A quarter of `dtype`'s largest finite value.

    If |α|·max|q − z| + |β| is at most this, every level α(q − z) + β, rounded twice in
    float64 and once to `dtype`, stays below the largest finite value: each rounding grows a
    magnitude by a factor of at most 1 + 2⁻⁵³, so the bound holds with room to spare. NaN
    never passes the comparison, so NaN α or β always takes the full check.
    """
    return float(np.finfo(dtype).max) / 4.0 if dtype.kind == "f" else -1.0


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


_Q = TypeVar("_Q", bound="Quantized")


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
        if isinstance(self.codes, np.generic):  # a 0-d result of NumPy arithmetic
            object.__setattr__(self, "codes", np.asarray(self.codes))
        if not isinstance(self.codes, np.ndarray) or self.codes.dtype.kind != "i":
            kind = getattr(self.codes, "dtype", type(self.codes).__name__)
            raise TypeError(f"codes must be a signed integer array, got {kind}")
        axis = self.axis
        if axis is not None and not isinstance(axis, bool) and \
                isinstance(axis, int | np.integer) and -self.codes.ndim <= axis < 0:
            object.__setattr__(self, "axis", int(axis) % self.codes.ndim)  # one meaning
        check_quantized_parts(self.codes, self.alpha, self.beta, self.zero_point, self.bits,
                              self.axis, self.scheme,
                              allow_nan_alpha=self.allows_nan_alpha(),
                              source="Quantized")
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if self.dtype.kind != "f":
            raise TypeError(f"Quantized: dtype must be a float dtype, got {self.dtype}")
        check_representable(self.alpha, self.beta, self.zero_point,
                            *scheme_code_range(self.scheme, self.bits), self.dtype)
        for name in ("codes", "alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.flags.writeable:
                value = value.copy()
                value.setflags(write=False)
                object.__setattr__(self, name, value)

    @classmethod
    def _trusted(cls: type[_Q], **parts: Any) -> _Q:
        """A result the library built itself from validated input, made without re-checking.

        For :func:`ul2q_ref.ul2q.quantize` only, whose parts hold what the public constructor
        would check: the codes are a fresh array from the encode step, which clips them to
        the scheme's range; α and β are in their public form (:func:`public_parameter`); the
        levels were checked against `dtype` before the encode step. The public constructor
        checks all of this again (a pass over the codes for their range and a copy of them:
        0.6 ms at 2^22 int8 codes, about 8 % of :func:`ul2q_ref.quantize` with the compiled
        kernels on one thread); here the codes are frozen in place (the caller hands them
        over) and only the cheap invariants are asserted. ``tests/test_trusted_result.py``
        passes such results through the public constructor.
        """
        result = object.__new__(cls)
        for field in fields(cls):
            value = parts.pop(field.name, field.default)
            assert value is not MISSING, f"{field.name} is missing"
            object.__setattr__(result, field.name, value)
        assert not parts, f"unknown fields {sorted(parts)}"
        codes = result.codes
        assert isinstance(codes, np.ndarray) and codes.dtype.kind == "i"
        assert isinstance(result.dtype, np.dtype) and result.dtype.kind == "f"
        assert result.axis is None or 0 <= result.axis < codes.ndim
        assert all(isinstance(value, np.float64) or not value.flags.writeable
                   for value in (result.alpha, result.beta))
        codes.setflags(write=False)
        return result

    def allows_nan_alpha(self) -> bool:
        """Whether α may be NaN: never for the definition; a profile result that reproduces
        an implementation's NaN channels says so (:class:`ul2q_ref.profiles.ProfileQuantized`)."""
        return False

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the quantised tensor."""
        return self.codes.shape

    def dequantize(self, dtype: Any = None, *, backend: str = "auto") -> np.ndarray:
        """The reconstruction ŵ = α·(q − z) + β, in `dtype` (default: :attr:`dtype`).

        The same as :func:`ul2q_ref.dequantize` (``backend`` chooses the implementation):
        :func:`dequantize`.
        """
        return dequantize(self, dtype, backend=backend)


def dequantize(quantized: Quantized, dtype: Any = None, *, backend: str = "auto"
               ) -> np.ndarray:
    r"""Decode `quantized`: ŵ = α·(q − z) + β, rounded once to `dtype` (default its own).

    The levels are first checked against `dtype` (:func:`check_representable`); then
    `backend` picks the decoder (:func:`ul2q_ref._backend.compiled`): the compiled kernel, or
    :func:`decode`, the definition. Both give the same bits.

    Raises
    ------
    TypeError
        If `dtype` is not a float dtype.
    UnrepresentableError
        If a level of the code book is not finite in `dtype`.
    """
    out_dtype = np.dtype(quantized.dtype if dtype is None else dtype)
    if out_dtype.kind != "f":
        raise TypeError(f"dtype must be a float dtype, got {out_dtype}")
    check_representable(quantized.alpha, quantized.beta, quantized.zero_point,
                        *scheme_code_range(quantized.scheme, quantized.bits), out_dtype)
    kernels = _backend.compiled(backend)
    return decode_with(decode if kernels is None else kernels.decode, quantized.codes,
                       quantized.alpha, quantized.beta, quantized.zero_point, quantized.axis,
                       out_dtype)


def decode_with(
    decoder: Callable[..., np.ndarray],
    codes: np.ndarray,
    alpha: Any,
    beta: Any,
    zero_point: float,
    axis: int | None,
    dtype: np.dtype,
) -> np.ndarray:
    """Decode with `decoder` (:func:`decode` or a kernel's ``decode``), preparing what the
    kernel convention of :mod:`ul2q_ref.kernels` needs.

    α and β become per-channel float64 vectors; codes of another integer type than
    int8/int16/int32 are converted exactly (they must fit in 32 bits); an output dtype other
    than native float16/float32/float64 is rounded once from the float64 result.
    """
    channels = channel_count(codes.shape, axis)
    alpha = channel_vector(alpha, channels)
    beta = channel_vector(beta, channels)
    if codes.dtype not in _backend.CODE_DTYPES:
        if codes.size and (codes.min() < np.iinfo(np.int32).min
                           or codes.max() > np.iinfo(np.int32).max):
            raise ValueError(f"codes of dtype {codes.dtype} do not fit in 32 bits")
        codes = codes.astype(np.int32)
    if dtype not in _backend.FLOAT_DTYPES:
        wide = decoder(codes, alpha, beta, zero_point, axis, np.dtype(np.float64))
        return np.asarray(wide.astype(dtype))
    return decoder(codes, alpha, beta, zero_point, axis, dtype)


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
