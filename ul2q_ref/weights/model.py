"""Whole models: quantise every weight tensor to codes and code books, and decode them back.

A quantised model is an ``.npz`` in the conventions of the trainer's integer model
(:mod:`ul2q_ref.nn.export`): ``format`` = ``ul2q-ref/quantized-model-v1``, ``source`` (the
file it came from), for every quantised tensor NAME the arrays of
:func:`ul2q_ref.io.quantized_arrays` as ``quantized/NAME/codes``, ``quantized/NAME/alpha``, …,
and every other tensor unchanged as ``float/NAME``. Everything loads with
``numpy.load(path, allow_pickle=False)``; :func:`ul2q_ref.weights.read_model` reads it back
with each quantised tensor decoded, ŵ = α(q − ½) + β.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import quantize
from ..io import quantized_arrays, save_npz_atomic
from .readers import QUANTIZED_MODEL_FORMAT, Model, ModelFileError, Tensor, read_model


def bits_for(tensors: Sequence[Tensor], bits: int | None = None,
             plan: Mapping[str, int] | None = None) -> dict[str, int]:
    """The bit width of each tensor (by tensor name): `bits` for all, or from a `plan`.

    A plan names layers (``conv1``) or tensors (``conv1.weight``); every selected tensor must
    be named, and every name must be a selected tensor.
    """
    if plan is None:
        if bits is None:
            raise ValueError("give --bits K or --plan plan.json")
        return {t.name: bits for t in tensors}
    widths = {}
    for tensor in tensors:
        width = plan.get(tensor.name, plan.get(tensor.layer))
        if width is None:
            raise ValueError(f"the plan names no width for layer {tensor.layer}")
        widths[tensor.name] = int(width)
    known = {name for t in tensors for name in (t.name, t.layer)}
    unknown = sorted(set(plan) - known)
    if unknown:
        raise ValueError(f"the plan names layers that are not selected weights: {unknown}")
    return widths


def quantize_model(
    model: Model, tensors: Sequence[Tensor], widths: Mapping[str, int], axis: int | None = None
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """The arrays of the quantised model and, per quantised tensor, its MSE and SQNR.

    Parameters
    ----------
    model : Model
        Every tensor of the file (the others are kept in float).
    tensors : sequence of Tensor
        The tensors to quantise.
    widths : mapping of str to int
        The bit width k of each tensor, by name.
    axis : int, optional
        None: one (α, β) per tensor; 0: per output channel (each tensor's own output-channel
        axis, :attr:`Tensor.channel_axis`).
    """
    chosen = {t.name for t in tensors}
    arrays: dict[str, np.ndarray] = {"format": np.array(QUANTIZED_MODEL_FORMAT),
                                     "source": np.array(os.path.basename(model.path))}
    rows = []
    for tensor in model.tensors:
        if tensor.name not in chosen:
            arrays[f"float/{tensor.name}"] = tensor.array
            continue
        channel = None if axis is None or tensor.array.ndim < 2 else tensor.channel_axis
        quantized = quantize(tensor.array, widths[tensor.name], axis=channel)
        for key, value in quantized_arrays(quantized).items():
            arrays[f"quantized/{tensor.name}/{key}"] = value
        original = tensor.array.astype(np.float64)
        error = (original - quantized.dequantize(np.float64)).ravel()
        mse = float(np.dot(error, error)) / error.size
        signal = float(np.mean(original * original))
        rows.append({"name": tensor.name, "shape": list(tensor.array.shape),
                     "bits": widths[tensor.name], "axis": channel, "mse": mse,
                     "sqnr_db": 10.0 * math.log10(signal / mse) if mse > 0 else math.inf})
    return arrays, rows


def save_quantized_model(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write the arrays of :func:`quantize_model` to `path` (``.npz``, atomically)."""
    save_npz_atomic(path, dict(arrays))


def float_tensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor of a model file as floats: quantised tensors decoded, the rest unchanged."""
    model = read_model(path)
    return {t.name: np.ascontiguousarray(t.array) for t in model.tensors}


def write_float_model(path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray]) -> None:
    """Write named tensors as ``.safetensors`` or ``.npz`` (by suffix), atomically."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".npz":
        save_npz_atomic(target, dict(tensors))
        return
    if suffix != ".safetensors":
        raise ModelFileError(f"{path}: write .safetensors or .npz, not {suffix or 'no suffix'}")
    try:
        from safetensors.numpy import save_file
    except ImportError:
        raise ModelFileError(f"{path}: writing safetensors needs the 'safetensors' package "
                             "(pip install 'ul2q-ref[models]')") from None
    descriptor, temporary = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                                             prefix=f".{target.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        save_file(dict(tensors), temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = ["bits_for", "float_tensors", "quantize_model", "save_quantized_model",
           "write_float_model"]
