r"""``convert``: any quantised PyTorch model to integer codes and (α, β), and back into torch.

:func:`convert` takes every tensor a :class:`~ul2q_ref.torch.UL2Q` quantises (a tied
Parameter once) to its codes q = clip(⌊(w − β)/α⌋ + 1, 1 − 2^(k−1), 2^(k−1)) and code book
β = μ, α = λ_k* σ — :func:`ul2q_ref.quantize` of the full-precision weights, which the CPU
operator computes bit for bit — and, given a path, writes the project's quantised-model file
(``ul2q-ref/quantized-model-v1``) with :func:`ul2q_ref.weights.quantize_model`, the file
``ul2q-ref inspect``, ``dequantize`` and :func:`ul2q_ref.weights.read_model` read.
:func:`load_converted` evaluates it in torch: each quantised tensor is decoded from its
integer codes by the ``ul2q::decode`` operator, ŵ = α(q − ½) + β in float64 rounded once,
equal bit for bit to the fake-quantised weights.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import io as uq_io
from .export import parameter_codes
from .modules import parameter_name, quantized_parameters, remove_quantization
from .ops import decode


def convert(model: nn.Module, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The codes and code book of every quantised tensor; with `path`, the model file too.

    Parameters
    ----------
    model : torch.nn.Module
        A model quantised with :func:`~ul2q_ref.torch.quantize_model` (or :class:`UL2Q`
        parametrisations registered by hand); per-channel and per-tensor tensors may be
        mixed (the file records each tensor's axis).
    path : path, optional
        Where to write the ``.npz`` (atomically): quantised tensors as codes and code books,
        every other parameter and buffer in float, by their state-dict names
        (``conv1.weight``; a tied Parameter under its first name).

    Returns
    -------
    dict
        Parameter name → :class:`ul2q_ref.Quantized` (codes, α, β, bits, axis).
    """
    codes = parameter_codes(model)
    if not codes:
        raise ValueError("model: has no quantised tensor (call quantize_model first)")
    if path is not None:
        _write(model, codes, path)
    return codes


def _write(model: nn.Module, codes: dict[str, Any], path: str | os.PathLike[str]) -> None:
    from ..weights import Model, Tensor, quantize_model
    from ..weights.tensors import role_from_name

    tensors = []
    for name, value in [*model.named_parameters(), *model.named_buffers()]:
        detached = value.detach().cpu()
        array = (detached.float() if detached.dtype == torch.bfloat16 else detached).numpy()
        clean = parameter_name(name)
        axis = codes[clean].axis if clean in codes and codes[clean].axis is not None else 0
        tensors.append(Tensor(clean, array, role_from_name(clean), axis))
    source = Model(path=f"torch-{type(model).__name__}", format="torch module",
                   tensors=tuple(tensors))
    chosen = [t for t in tensors if t.name in codes]
    widths = {name: q.bits for name, q in codes.items()}
    axes = {name: None if q.axis is None else 0 for name, q in codes.items()}  # 0: channel_axis
    quantize_model(source, chosen, widths, path, axes)


def load_converted(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a file of :func:`convert` into `model` (in place), decoding in torch.

    `model` has the architecture that was converted (float, or quantised: its quantisation is
    removed first). Each quantised tensor becomes a plain Parameter ŵ = α(q − ½) + β decoded
    by ``ul2q::decode`` from the stored integer codes; every other tensor is loaded as stored.
    Tied Parameters stay tied. Returns `model`.
    """
    arrays = uq_io.read_npz(path)
    groups: dict[str, dict[str, np.ndarray]] = {}
    floats: dict[str, np.ndarray] = {}
    for key, value in arrays.items():  # the layout of ul2q_ref.weights.model
        if key.startswith("quantized/"):
            name, _, field = key[len("quantized/"):].rpartition("/")
            groups.setdefault(name, {})[field] = value
        elif key.startswith("float/"):
            floats[key[len("float/"):]] = value
    if quantized_parameters(model):
        remove_quantization(model, bake=False)
    every: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=False))
    every.update(dict(model.named_buffers(remove_duplicate=False)))
    state: dict[str, torch.Tensor] = {}
    for name, fields in groups.items():
        quantized = uq_io.quantized_from_arrays(fields, source=f"{path}: {name}")
        if name not in every:
            raise ValueError(f"{path}: holds {name}, which the model does not have")
        target = every[name]
        state[name] = decode(torch.from_numpy(np.array(quantized.codes)),
                             torch.from_numpy(np.array(np.atleast_1d(quantized.alpha))),
                             torch.from_numpy(np.array(np.atleast_1d(quantized.beta))),
                             quantized.axis, target.dtype)
    for name, array in floats.items():
        state[name] = torch.from_numpy(np.array(array))
    missing = sorted(set(every) - set(state) - _tied_aliases(model, set(state)))
    if missing:
        raise ValueError(f"{path}: has no tensor for {', '.join(missing[:5])}")
    with torch.no_grad():
        for name, loaded in state.items():
            target = every[name]
            if loaded.shape != target.shape:
                raise ValueError(f"{path}: {name} has shape {tuple(loaded.shape)}, the model "
                                 f"needs {tuple(target.shape)}")
            target.copy_(loaded.to(target.dtype))
    return model


def _tied_aliases(model: nn.Module, present: set[str]) -> set[str]:
    """Names of Parameters that share their storage with a name in `present`."""
    by_id: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(parameter), []).append(name)
    return {alias for names in by_id.values() if present & set(names) for alias in names}


__all__ = ["convert", "load_converted"]
