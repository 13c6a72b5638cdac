"""The CPU implementation of the operators: the project's kernels on the tensor's own memory.

``tensor.numpy()`` of a CPU tensor is a view of the same memory (no copy, any strides), so the
compiled kernels of the registry :mod:`ul2q_ref.kernels` (``_fast``, or its NumPy twins when
the extension is not built) read float32 and float64 weights in place and write a new array
that ``torch.from_numpy`` wraps without copying. Either way the results are bit for bit those of
:func:`ul2q_ref.quantize`, :func:`ul2q_ref.encode` and :func:`ul2q_ref.fake_quantize`.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import kernels as registry
from .. import ul2q
from .._validate import FinitenessChecked, _check_finite
from ..codebook import ZERO_POINT, check_representable

_NUMPY_FLOATS = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
_RANGE_OF = {**_NUMPY_FLOATS, torch.bfloat16: np.float32}
"""The NumPy dtype whose finite range is the tensor dtype's (bfloat16 spans float32's)."""


def as_array(w: torch.Tensor, name: str = "w", *, check: bool = True) -> np.ndarray:
    """A NumPy view of a float32/float64 CPU tensor (float16/bfloat16: an exact float32 copy),
    checked to be finite (ValueError naming the first NaN or ±inf) unless ``check=False``."""
    if w.dtype not in (torch.float32, torch.float64):
        w = w.to(torch.float32)  # float16 and bfloat16 are exactly representable in float32
    array = w.detach().numpy()
    if check:
        _check_finite(array, name)
    return array


_CHECKED_KERNELS: dict[int, FinitenessChecked] = {}


def _kernels() -> FinitenessChecked:
    """The compiled kernels when built, else their NumPy twins (:mod:`ul2q_ref.kernels`), with
    the finiteness check of the public layer on the moments (made once per kernel module)."""
    kernels = registry.select("auto")
    checked = _CHECKED_KERNELS.get(id(kernels))
    if checked is None or checked.kernels is not kernels:
        checked = _CHECKED_KERNELS[id(kernels)] = FinitenessChecked(kernels)
    return checked


def moments(array: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """μ and σ per channel as float64 vectors (length 1 per tensor); ValueError if `array`
    holds NaN or ±inf."""
    return _kernels().moments(array, axis)


def encode(array: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
           axis: int | None) -> np.ndarray:
    """Codes of dtype ``code_dtype(bits)``, as :func:`ul2q_ref.encode`, C-contiguous (as the
    operator's fake kernel promises) whatever the layout of `array`."""
    codes = ul2q.encode(array, alpha, beta, bits, axis, registry.select("auto"))
    return codes if codes.flags.c_contiguous else np.ascontiguousarray(codes)


def decode(codes: np.ndarray, alpha: np.ndarray, beta: np.ndarray, axis: int | None,
           dtype: torch.dtype) -> torch.Tensor:
    """ŵ = α(q − ½) + β in float64, rounded once to `dtype` (bfloat16: via float64 in torch)."""
    target = _NUMPY_FLOATS.get(dtype, np.float64)
    if codes.size:  # the rule of docs/spec.md: no level may overflow to ±inf
        check_representable(alpha, beta, ZERO_POINT, int(codes.min()), int(codes.max()),
                            _RANGE_OF.get(dtype, np.float64))
    out = ul2q.dequantize(codes, alpha, beta, axis, target, registry.select("auto"))
    return _as_tensor(out, dtype)


def fake_quantize(array: np.ndarray, bits: int, axis: int | None,
                  dtype: torch.dtype) -> torch.Tensor:
    """ŵ of `array` in `dtype` by :func:`ul2q_ref.ul2q.fake_quantize` (finiteness checked on
    the moments; bfloat16 computed in float64, its levels checked against float32's range,
    then rounded once by torch)."""
    return _as_tensor(fake_quantize_array(array, bits, axis, dtype), dtype)


def fake_quantize_array(array: np.ndarray, bits: int, axis: int | None, dtype: torch.dtype,
                        out: np.ndarray | None = None) -> np.ndarray:
    """ŵ of `array` as a NumPy array of `dtype`'s NumPy twin (float64 for bfloat16), written
    into `out` when given (see :func:`ul2q_ref.ul2q.fake_quantize`)."""
    target = _NUMPY_FLOATS.get(dtype, np.float64)
    return ul2q.fake_quantize(array, bits, axis, target, _kernels(),
                              range_dtype=_RANGE_OF.get(dtype, np.float64), out=out)


def numpy_float(dtype: torch.dtype) -> type | None:
    """The NumPy dtype that holds `dtype`'s values as they are (None for bfloat16)."""
    return _NUMPY_FLOATS.get(dtype)


def _as_tensor(out: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """`out` as a C-contiguous torch tensor of `dtype` (the operators' fake kernels promise a
    contiguous result), sharing its memory when no copy or conversion is needed."""
    if not out.flags.c_contiguous:
        out = np.ascontiguousarray(out)
    tensor = torch.from_numpy(out)
    return tensor if tensor.dtype == dtype else tensor.to(dtype)
