"""Integer export of a PyTorch μL2Q model: the project's integer-model file, and ONNX.

:func:`export_model` writes the file ``ul2q-ref export`` writes (format
``ul2q-ref/integer-model-v1``, :mod:`ul2q_ref.nn.export`): for every quantised layer its codes
and code book (α, β, z = ½, bits), every other parameter in float. ``ul2q-ref evaluate`` then
runs the model from its codes with the NumPy network of the same architecture. The codes come
from :func:`ul2q_ref.quantize` of the full-precision weights, which is what the CPU operator
computes bit for bit, so the decoded weights equal the PyTorch model's quantised weights.

:func:`export_onnx` writes an ONNX model whose quantised weights are stored as integer codes
(int8/int16/int32 initializers) and rebuilt in the graph exactly as the reference does,
ŵ = float32(α·(float64(q) − ½) + β) in float64 arithmetic — ``Cast``, ``Sub``, ``Mul``,
``Add``, ``Cast``. (``DequantizeLinear`` needs an integer zero point; μL2Q's, ½ − β/α, is not.)
"""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import io as uq_io
from ..api import quantize as reference_quantize
from .modules import quantized_layers, remove_quantization

_ONNX_INT = {np.dtype(np.int8): 3, np.dtype(np.int16): 5, np.dtype(np.int32): 6}


def _full_precision(module: nn.Module, part: str) -> torch.Tensor:
    if part == "weight" and torch.nn.utils.parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return getattr(module, part)


def layer_codes(model: nn.Module) -> dict[str, Any]:
    """Layer name → the :class:`ul2q_ref.Quantized` of its weight, for every quantised layer."""
    modules = dict(model.named_modules())
    result = {}
    for name, parametrization in quantized_layers(model).items():
        weight = _full_precision(modules[name], "weight").detach().cpu().numpy()
        result[name] = reference_quantize(weight, parametrization.bits,
                                          axis=parametrization.axis)
    return result


def export_model(model: nn.Module, path: str | os.PathLike[str], *,
                 data: str = "mnist-small") -> dict[str, Any]:
    """Write `model` as the project's integer-model file, for ``ul2q-ref evaluate``.

    Parameters
    ----------
    model : torch.nn.Module
        A model of :mod:`ul2q_ref.torch.models` that has a NumPy twin (``ul2q_numpy_model``:
        LeNet-5, Cifarnet) with its :class:`UL2Q` parametrisations; parameter names must be
        the twin's (``conv1.weight``, ``fc2.bias``, …).
    path : path
        The ``.npz`` file to write (atomically).
    data : str
        The data spec ``evaluate`` uses by default (``mnist-small``, ``mnist:DIR``, …).
    """
    from ..nn.export import EXPORT_FORMAT
    from ..nn.models import build_model
    from ..nn.train import TrainConfig

    twin = getattr(model, "ul2q_numpy_model", None)
    if twin is None:
        raise ValueError(f"model: {type(model).__name__} has no NumPy twin (ul2q_numpy_model); "
                         f"export_model supports LeNet5 and Cifarnet of ul2q_ref.torch.models")
    numpy_model = build_model(twin, np.random.default_rng(0), **model.ul2q_numpy_kwargs)
    codes = layer_codes(model)
    widths = sorted({q.bits for q in codes.values()})
    base = max(widths, key=lambda k: sum(q.bits == k for q in codes.values())) if widths else None
    config = TrainConfig(model=twin, scheme="ul2q" if codes else "float", bits=base,
                         layer_bits={n: q.bits for n, q in codes.items() if q.bits != base},
                         data=data)
    arrays: dict[str, np.ndarray] = {"format": np.array(EXPORT_FORMAT),
                                     "config": np.array(config.to_json())}
    modules = dict(model.named_modules())
    for key, target in numpy_model.state_dict().items():
        layer, part = key.rsplit(".", 1)
        if layer in codes and part == "weight":
            for field, value in uq_io.quantized_arrays(codes[layer]).items():
                arrays[f"quantized/{key}/{field}"] = value
            continue
        if layer not in modules or not hasattr(modules[layer], part):
            raise ValueError(f"model: has no parameter {key} (its NumPy twin {twin} needs it)")
        value = _full_precision(modules[layer], part).detach().cpu().numpy()
        if value.shape != target.shape:
            raise ValueError(f"model: {key} has shape {value.shape}, {twin} needs {target.shape}")
        arrays[f"float/{key}"] = value.astype(target.dtype)
    uq_io.save_npz_atomic(path, arrays)
    return {"config": config, "layers": {n: q.bits for n, q in codes.items()}}


def export_onnx(model: nn.Module, path: str | os.PathLike[str], example: torch.Tensor, *,
                opset: int = 17) -> dict[str, str]:
    """Write `model` to ONNX with its quantised weights stored as integer codes.

    The float graph comes from ``torch.onnx.export`` (the TorchScript exporter: the newer one
    needs the ``onnxscript`` package) of the model with its weights baked; each quantised
    weight's initializer is then replaced by its codes, α and β and the exact decoding
    ``Cast(q, double) − ½ → ·α → +β → Cast(float)``. The input's first axis is dynamic.

    Returns the weight name → codes initializer name of every replaced weight.
    """
    import onnx
    from onnx import helper, numpy_helper

    codes = layer_codes(model)
    baked = remove_quantization(copy.deepcopy(model).cpu(), bake=True).eval()
    baked_weights = {name: baked.get_submodule(name).weight.detach().numpy() for name in codes}
    buffer = io.BytesIO()
    torch.onnx.export(baked, (example.cpu(),), buffer, dynamo=False, opset_version=opset,
                      do_constant_folding=False, input_names=["input"],
                      output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    graph_model = onnx.load_from_string(buffer.getvalue())
    graph = graph_model.graph
    by_bytes = {numpy_helper.to_array(init).tobytes(): init for init in graph.initializer}
    replaced: dict[str, str] = {}
    nodes = []
    half = helper.make_tensor("ul2q.half", onnx.TensorProto.DOUBLE, [], [0.5])
    graph.initializer.append(half)
    for name, q in codes.items():
        init = by_bytes.get(baked_weights[name].tobytes())
        if init is None:
            raise ValueError(f"model: the ONNX exporter changed {name}.weight (folded into "
                             f"another node?); cannot store it as codes")
        target = init.name
        shape = [1] * q.codes.ndim
        if q.axis is not None:
            shape[q.axis] = q.codes.shape[q.axis]
        prefix = f"ul2q.{name}"
        graph.initializer.remove(init)
        graph.initializer.extend([
            numpy_helper.from_array(np.ascontiguousarray(q.codes), f"{prefix}.codes"),
            numpy_helper.from_array(np.asarray(q.alpha, np.float64).reshape(shape),
                                    f"{prefix}.alpha"),
            numpy_helper.from_array(np.asarray(q.beta, np.float64).reshape(shape),
                                    f"{prefix}.beta"),
        ])
        nodes += [
            helper.make_node("Cast", [f"{prefix}.codes"], [f"{prefix}.q"],
                             to=onnx.TensorProto.DOUBLE),
            helper.make_node("Sub", [f"{prefix}.q", "ul2q.half"], [f"{prefix}.centred"]),
            helper.make_node("Mul", [f"{prefix}.centred", f"{prefix}.alpha"],
                             [f"{prefix}.scaled"]),
            helper.make_node("Add", [f"{prefix}.scaled", f"{prefix}.beta"], [f"{prefix}.w64"]),
            helper.make_node("Cast", [f"{prefix}.w64"], [target], to=onnx.TensorProto.FLOAT),
        ]
        replaced[f"{name}.weight"] = f"{prefix}.codes"
    for node in reversed(nodes):
        graph.node.insert(0, node)
    onnx.checker.check_model(graph_model)
    Path(path).write_bytes(graph_model.SerializeToString())
    return replaced


__all__ = ["export_model", "export_onnx", "layer_codes"]
