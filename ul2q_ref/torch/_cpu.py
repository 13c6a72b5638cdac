"""The CPU implementation of the operators: the project's kernels on the tensor's own memory.

``tensor.numpy()`` of a CPU tensor is a view of the same memory (no copy, any strides), so the
compiled kernels of the registry :mod:`ul2q_ref.kernels` (``_fast``, or its NumPy twins when
the extension is not built) read float32 and float64 weights in place and write a new array
that ``torch.from_numpy`` wraps without copying. Either way the results are bit for bit those of
:func:`ul2q_ref.quantize`, :func:`ul2q_ref.encode` and :func:`ul2q_ref.fake_quantize`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import kernels as registry
from .._validate import _check_finite, check_finite_given_moments
from ..codebook import check_representable, code_dtype, code_range
from ..ul2q import ZERO_POINT

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


def _kernels() -> Any:
    """The compiled kernels when built, else their NumPy twins (:mod:`ul2q_ref.kernels`)."""
    return registry.select("auto")


def moments(array: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """μ and σ per channel as float64 vectors (length 1 per tensor); ValueError if `array`
    holds NaN or ±inf."""
    with np.errstate(all="ignore"):  # non-finite input is reported below, not warned about
        mean, std = _kernels().moments(array, axis)
    mean, std = np.atleast_1d(mean).astype(np.float64), np.atleast_1d(std).astype(np.float64)
    check_finite_given_moments(array, mean, std)
    return mean, std


def encode(array: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
           axis: int | None) -> np.ndarray:
    """Codes of dtype ``code_dtype(bits)``, as :func:`ul2q_ref.encode`."""
    return _kernels().encode(array, alpha, beta, bits, axis, code_dtype(bits))


def decode(codes: np.ndarray, alpha: np.ndarray, beta: np.ndarray, axis: int | None,
           dtype: torch.dtype) -> torch.Tensor:
    """ŵ = α(q − ½) + β in float64, rounded once to `dtype` (bfloat16: via float64 in torch)."""
    target = _NUMPY_FLOATS.get(dtype, np.float64)
    if codes.size:  # the rule of docs/spec.md: no level may overflow to ±inf
        check_representable(alpha, beta, ZERO_POINT, int(codes.min()), int(codes.max()),
                            _RANGE_OF.get(dtype, np.float64))
    out = _kernels().decode(codes, alpha, beta, ZERO_POINT, axis, target)
    return torch.from_numpy(np.ascontiguousarray(out)).to(dtype)


def fake_quantize(array: np.ndarray, alpha: np.ndarray, beta: np.ndarray, bits: int,
                  axis: int | None, dtype: torch.dtype) -> torch.Tensor:
    """decode(encode(w)) in one pass of the kernel."""
    target = _NUMPY_FLOATS.get(dtype, np.float64)
    check_representable(alpha, beta, ZERO_POINT, *code_range(bits),
                        _RANGE_OF.get(dtype, np.float64))
    out = _kernels().fake_quantize(array, alpha, beta, bits, ZERO_POINT, axis, target)
    return torch.from_numpy(np.ascontiguousarray(out)).to(dtype)
