r"""PyTorch bridge: μL2Q as PyTorch operators, modules and tools (optional extra ``[torch]``).

>>> import torch
>>> from ul2q_ref.torch import UL2Q, ul2q
>>> w = torch.randn(8, 3, 3, 3, requires_grad=True)
>>> w_hat = ul2q(w, bits=2, axis=0)      # forward: μL2Q reconstruction ŵ
>>> w_hat.sum().backward()               # backward: straight-through, dŵ/dw = 1
>>> bool((w.grad == 1).all())
True

* :mod:`ul2q_ref.torch.ops` — the operators ``ul2q::fake_quantize``, ``ul2q::moments``,
  ``ul2q::encode``, ``ul2q::decode`` (compile/export friendly) and their exactness;
* :mod:`ul2q_ref.torch.modules` — :class:`UL2Q`, :func:`quantize_model`, the paper's layer
  configuration, :func:`remove_quantization`;
* :mod:`ul2q_ref.torch.export` — :func:`export_model` (the project's integer-model file) and
  :func:`export_onnx` (integer codes in ONNX);
* :mod:`ul2q_ref.torch.convert` — :func:`convert` (any quantised model to codes and (α, β),
  the project's quantised-model file) and :func:`load_converted`;
* :mod:`ul2q_ref.torch.decompose` — ``ul2q::fake_quantize`` in ATen operations, registered
  for ``torch.onnx.export(..., dynamo=True)``;
* :mod:`ul2q_ref.torch.ao` — :class:`UL2QFakeQuantize` for torch.ao's ``prepare_qat`` and
  :func:`convert_qat`; :mod:`ul2q_ref.torch.torchao` — :class:`UL2QConfig` for torchao's
  ``quantize_`` (both imported on first use);
* :mod:`ul2q_ref.torch.models` — the paper's four networks;
* :mod:`ul2q_ref.torch.crosscheck` — the conformance checker's adapter.

The guide is docs/torch.md.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as _error:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "ul2q_ref.torch needs PyTorch, which is not installed; install it with "
        "pip install 'ul2q-ref[torch]' (or see https://pytorch.org for other builds)"
    ) from _error

from ._exact import pairwise_sum, row_moments
from .convert import convert, load_converted
from .crosscheck import solve_crosscheck_request
from .modules import (
    UL2Q,
    QuantizationReport,
    paper_plan,
    quantize_model,
    quantized_parameters,
    remove_quantization,
)
from .ops import (
    MODES,
    TorchQuantized,
    UL2QFunction,
    decode,
    encode,
    fake_quantize,
    moments,
    quantize,
    ul2q,
)


def __getattr__(name: str) -> object:
    """``UL2QConfig`` (needs torchao), ``UL2QFakeQuantize`` and ``convert_qat``, on first use."""
    if name == "UL2QConfig":
        from .torchao import UL2QConfig

        return UL2QConfig
    if name in ("UL2QFakeQuantize", "convert_qat"):
        from . import ao

        return getattr(ao, name)
    raise AttributeError(f"module 'ul2q_ref.torch' has no attribute {name!r}")


__all__ = [
    "MODES",
    "QuantizationReport",
    "TorchQuantized",
    "UL2Q",
    "UL2QFunction",
    "convert",
    "decode",
    "encode",
    "fake_quantize",
    "load_converted",
    "moments",
    "pairwise_sum",
    "paper_plan",
    "quantize",
    "quantize_model",
    "quantized_parameters",
    "remove_quantization",
    "row_moments",
    "solve_crosscheck_request",
    "ul2q",
]
