"""Exact text forms of floating-point arrays: bit patterns in hex, decimals, ulp distances.

Every float in the conformance vectors and in an implementation's results is written as the
hexadecimal bit pattern of its IEEE 754 binary32 or binary64 encoding (``"3f800000"`` is
float32 1.0), so nothing is lost to decimal conversion. Decimals are added for people only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FLOAT_DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
_UINT: dict[str, np.dtype[Any]] = {"float32": np.dtype("<u4"), "float64": np.dtype("<u8")}
_INT: dict[str, np.dtype[Any]] = {"float32": np.dtype("<i4"), "float64": np.dtype("<i8")}
_DIGITS = {"float32": 8, "float64": 16}


def dtype_name(dtype: Any) -> str:
    """``"float32"`` or ``"float64"`` for a NumPy float dtype (anything else is an error)."""
    name = np.dtype(dtype).name
    if name not in FLOAT_DTYPES:
        raise ValueError(f"expected float32 or float64, got {name}")
    return name


def to_hex(values: Any, dtype: str) -> list[str]:
    """The bit patterns of `values` (flattened in C order) rounded to `dtype`, as hex strings."""
    array = np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=FLOAT_DTYPES[dtype])
    width = _DIGITS[dtype]
    return [f"{bits:0{width}x}" for bits in array.view(_UINT[dtype]).tolist()]


def from_hex(patterns: Sequence[str], dtype: str) -> np.ndarray:
    """The float array (native byte order) whose bit patterns are `patterns`.

    Raises ValueError naming the first pattern that is not `dtype`'s number of hex digits.
    """
    width = _DIGITS[dtype]
    integers = []
    for index, text in enumerate(patterns):
        if not isinstance(text, str) or len(text) != width:
            raise ValueError(
                f"element {index}: expected a {width}-digit hex bit pattern of a {dtype}, "
                f"got {text!r}"
            )
        try:
            integers.append(int(text, 16))
        except ValueError:
            raise ValueError(f"element {index}: {text!r} is not hexadecimal") from None
    bits = np.array(integers, dtype=_UINT[dtype])
    return bits.view(FLOAT_DTYPES[dtype]).astype(np.dtype(dtype))


def to_decimal(values: Any, dtype: str) -> list[str]:
    """Shortest decimal strings that round-trip to each value in `dtype` (for people)."""
    array = np.asarray(values).reshape(-1).astype(FLOAT_DTYPES[dtype])
    scalar = np.float32 if dtype == "float32" else np.float64
    return [str(scalar(value)) for value in array]


def ordered(values: np.ndarray, dtype: str) -> list[int]:
    """Integers in the order of the floats: adjacent floats differ by 1, and ±0 both map to 0."""
    bits = np.ascontiguousarray(values, dtype=FLOAT_DTYPES[dtype]).view(_INT[dtype])
    mask = (1 << (8 * FLOAT_DTYPES[dtype].itemsize - 1)) - 1
    return [value if value >= 0 else -(value & mask) for value in bits.reshape(-1).tolist()]


def ulp_distance(expected: Any, got: Any, dtype: str) -> list[float]:
    """How many representable `dtype` values lie between each pair (0 = equal).

    +0 and −0 are 0 apart and any two NaNs are 0 apart; a NaN against a number is infinitely
    far. Returned as Python numbers (ints, or ``inf``).
    """
    a = np.asarray(expected, dtype=FLOAT_DTYPES[dtype]).reshape(-1)
    b = np.asarray(got, dtype=FLOAT_DTYPES[dtype]).reshape(-1)
    nan_a, nan_b = np.isnan(a).tolist(), np.isnan(b).tolist()
    keys_a, keys_b = ordered(a, dtype), ordered(b, dtype)
    distances: list[float] = []
    for key_a, key_b, na, nb in zip(keys_a, keys_b, nan_a, nan_b, strict=True):
        if na or nb:
            distances.append(0 if na and nb else float("inf"))
        else:
            distances.append(abs(key_a - key_b))
    return distances


def shift_ulps(values: np.ndarray, steps: int) -> np.ndarray:
    """`values` moved `steps` representable numbers up (negative: down), same float dtype.

    Moves stop at ±inf; NaN stays NaN.
    """
    array = np.asarray(values)
    dtype = dtype_name(array.dtype)
    width = 8 * array.dtype.itemsize
    sign = 1 << (width - 1)
    top = ordered(np.array([np.inf], dtype=array.dtype), dtype)[0]
    keys = [min(max(key + steps, -top), top) for key in ordered(array, dtype)]
    bits = [key if key >= 0 else (-key) | sign for key in keys]
    shifted = np.array(bits, dtype=_UINT[dtype]).view(FLOAT_DTYPES[dtype])
    shifted = shifted.astype(array.dtype).reshape(array.shape)
    return np.where(np.isnan(array), array, shifted)


def describe(value: float, dtype: str) -> str:
    """``0x3f800000 (1.0)``: a value's bit pattern and decimal, for reports."""
    return f"0x{to_hex([value], dtype)[0]} ({to_decimal([value], dtype)[0]})"
