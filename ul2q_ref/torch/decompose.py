r"""``ul2q::fake_quantize`` written in ATen operations, for exporters that cannot run the kernel.

The decomposition is registered in PyTorch's decomposition table
(``torch._decomp.decomposition_table``), which the ONNX exporter
(``torch.onnx.export(model, args, dynamo=True)``) applies to every operator it has no ONNX
function for: each quantised weight becomes a small float64 subgraph computing

.. math::
    μ = \frac{1}{n}\sum w,\quad d = w − μ,\quad
    σ = \sqrt{\tfrac{1}{n}\max\big(\textstyle\sum d^2 − (\sum d)^2/n,\ 0\big)},\quad
    α = λ_k^* σ,\quad β = μ,

    q = \mathrm{clip}\big(\lfloor (w − β)/α \rfloor + 1,\ 1 − 2^{k−1},\ 2^{k−1}\big)
    \ (q = 1 \text{ where } α = 0),\quad \hat w = α(q − ½) + β

in float64, rounded once to w's dtype — the reference's formulas (:func:`ul2q_ref.moments`:
the corrected two-pass variance; a constant channel has μ = its value, σ = 0). The sums run
in the runtime's order instead of NumPy's pairwise order, so μ and σ may differ from the
reference in the last bits of float64; ŵ differs only where (w − β)/α lies within that
error of an integer (a code flips) or α(q − ½) + β lies that close to a rounding boundary
of w's dtype. Measured (tests/test_torch_onnx.py): float32 ŵ bit for bit, float64 within
6 ulps, float16 within 1 ulp (torch's float64 → float16 conversion goes through float32).
λ_k* reaches the graph exactly (:func:`float32_pieces`). Unlike the reference and
:mod:`ul2q_ref.torch._device` it does not rescale by max|w|, so weights beyond about 1e154
overflow in Σd².
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..codebook import code_range
from ..gaussian import optimal_lambda


def _reduced_dims(ndim: int, axis: int | None) -> list[int]:
    return [d for d in range(ndim) if d != axis]


def float32_pieces(value: float) -> tuple[float, float, float]:
    """Three float32 numbers whose float64 sum ``(hi + mid) + lo`` is exactly `value`.

    The ONNX exporter writes a float64 scalar constant as a float32 ``Constant`` and a
    ``Cast`` (PyTorch 2.13), which would round λ_k* to 24 bits; each piece survives that
    exactly, and the two float64 additions are exact. ValueError if `value` needs more.
    """
    hi = float(np.float32(value))
    mid = float(np.float32(value - hi))
    lo = float(np.float32(value - hi - mid))
    if (hi + mid) + lo != value:
        raise ValueError(f"{value!r} is not a sum of three float32 numbers")
    return hi, mid, lo


def _exact_float64(value: float, device: torch.device) -> Tensor:
    hi, mid, lo = (torch.full((), piece, dtype=torch.float64, device=device)
                   for piece in float32_pieces(value))
    return (hi + mid) + lo


def fake_quantize_decomposition(w: Tensor, bits: int, axis: int | None = None,
                                mode: str = "auto") -> Tensor:
    """ŵ = μL2Q(w) from ATen operations (the formulas of the module docstring)."""
    if w.dim() == 0:
        return w.clone()  # one value: σ = 0, α = 0, q = 1, ŵ = β = μ = w
    if axis is not None:
        axis = axis % w.dim()
    dims = _reduced_dims(w.dim(), axis)
    values = w.to(torch.float64)
    count = 1
    for d in dims:
        count *= w.shape[d]
    highest = torch.amax(values, dim=dims, keepdim=True)
    constant = highest == torch.amin(values, dim=dims, keepdim=True)
    mean = torch.where(constant, highest, torch.sum(values, dim=dims, keepdim=True) / count)
    deviations = values - mean
    sum_of_squares = torch.sum(deviations * deviations, dim=dims, keepdim=True)
    total = torch.sum(deviations, dim=dims, keepdim=True)
    variance = torch.clamp(sum_of_squares - total * total / count, min=0.0) / count
    alpha = _exact_float64(optimal_lambda(bits), w.device) * torch.sqrt(variance)
    alpha = torch.where(constant, torch.zeros_like(alpha), alpha)
    lowest, top = code_range(bits)
    codes = torch.clamp(torch.floor(deviations / alpha) + 1.0, lowest, top)
    codes = torch.where(alpha == 0.0, torch.ones_like(codes), codes)
    return (alpha * (codes - 0.5) + mean).to(w.dtype)


def register() -> None:
    """Put the decomposition in ``torch._decomp.decomposition_table`` (idempotent)."""
    from torch._decomp import decomposition_table

    decomposition_table.setdefault(torch.ops.ul2q.fake_quantize.default,
                                   fake_quantize_decomposition)


__all__ = ["fake_quantize_decomposition", "float32_pieces", "register"]
