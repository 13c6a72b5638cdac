"""Integer export of a PyTorch μL2Q model: the project's integer-model file, and ONNX.

:func:`export_model` writes the file ``ul2q-ref export`` writes (format
``ul2q-ref/integer-model-v1``, :mod:`ul2q_ref.nn.export`): for every quantised layer its codes
and code book (α, β, z = ½, bits), every other parameter in float. ``ul2q-ref evaluate`` then
runs the model from its codes with the NumPy network of the same architecture. The codes come
from :func:`ul2q_ref.quantize` of the full-precision weights, which is what the CPU operator
computes bit for bit, so the decoded weights equal the PyTorch model's quantised weights.

:func:`export_onnx` writes an ONNX model (the dynamo exporter) whose quantised weights are
stored as integer codes q − 1 in ONNX's INT2/INT4/INT8/INT16 and rebuilt in the graph exactly
as the reference does, ŵ = float32(α·(float64(q − 1) + ½) + β) in float64 arithmetic —
``Cast``, ``Add``, ``Mul``, ``Add``, ``Cast``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import io as uq_io
from ..api import quantize as reference_quantize
from .modules import (
    parameter_name,
    parametrizations,
    quantized_layers,
    quantized_parameters,
    remove_quantization,
)


def _full_precision(module: nn.Module, part: str) -> torch.Tensor:
    if part == "weight" and torch.nn.utils.parametrize.is_parametrized(module, "weight"):
        original: torch.Tensor = parametrizations(module)["weight"].original
        return original
    value: torch.Tensor = getattr(module, part)
    return value


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
    twin_kwargs: dict[str, Any] = vars(model)["ul2q_numpy_kwargs"]
    numpy_model = build_model(twin, np.random.default_rng(0), **twin_kwargs)
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


def parameter_codes(model: nn.Module) -> dict[str, Any]:
    """Parameter name → :class:`ul2q_ref.Quantized` of every quantised tensor (a tied
    Parameter once, under its first name)."""
    result: dict[str, Any] = {}
    done: set[int] = set()
    modules = dict(model.named_modules())
    for name, parametrization in quantized_parameters(model).items():
        module_name, _, tensor = name.rpartition(".")
        original = modules[module_name].parametrizations[tensor].original
        if id(original) in done:
            continue
        done.add(id(original))
        result[name] = reference_quantize(original.detach().cpu().numpy(),
                                          parametrization.bits, axis=parametrization.axis)
    return result


def _aliases(model: nn.Module) -> dict[str, list[str]]:
    """Each quantised tensor's first name → every name the same Parameter has (baked)."""
    users: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        clean = parameter_name(name)
        users.setdefault(id(parameter), []).append(clean)
    return {names[0]: names for names in users.values()} | {
        n: names for names in users.values() for n in names}


ONNX_OPSET = 25
"""The opset :func:`export_onnx` writes: INT2 ``Cast`` needs 25, INT4 21."""


def _packed_type(bits: int) -> tuple[int, str]:
    """The ONNX type holding q − 1 of k-bit codes (signed k-bit range) and its name."""
    import onnx

    for top, type_name in ((2, "INT2"), (4, "INT4"), (8, "INT8"), (16, "INT16")):
        if bits <= top:
            return getattr(onnx.TensorProto, type_name), type_name
    raise ValueError(f"bits must be at most 16, got {bits}")


def export_onnx(model: nn.Module, path: str | os.PathLike[str], example: torch.Tensor, *,
                opset: int = ONNX_OPSET) -> dict[str, str]:
    """Write `model` to ONNX with its quantised weights stored as integer codes.

    The float graph comes from ``torch.onnx.export(..., dynamo=True, optimize=False)`` of the
    model with its weights baked (the exporter names each weight initializer after its
    parameter, so two layers with identical weights are two initializers). Each quantised
    weight's initializer is then replaced by its codes, stored as q − 1 (which fits the signed
    k-bit range: 1-2 bits in INT2, 3-4 in INT4, 5-8 in INT8, 9-16 in INT16), α and β
    (float64), and the exact decoding ``Cast(q − 1 → double) + ½ → ·α → +β → Cast(dtype)``,
    i.e. ŵ = α(q − ½) + β in float64 rounded once, as the reference. (``DequantizeLinear``
    needs an integer zero point; μL2Q's, ½ − β/α, is not one.) The input's first axis is
    dynamic. Opset 25 (INT2 ``Cast``); tested with onnx 1.23.2 and onnxruntime 1.32.0.

    Returns the weight name → codes initializer name of every replaced weight (a tied weight
    appears once, under the name the exporter gave it).
    """
    import onnx
    from onnx import helper, numpy_helper

    codes = parameter_codes(model)
    names = _aliases(model)
    baked = remove_quantization(copy.deepcopy(model).cpu(), bake=True).eval()
    program: Any = torch.onnx.export(baked, (example.cpu(),), dynamo=True, optimize=False,
                                opset_version=opset, input_names=["input"],
                                output_names=["output"],
                                dynamic_shapes=({0: "batch"},), verbose=False)
    graph_model = program.model_proto
    graph = graph_model.graph
    by_name = {init.name: init for init in graph.initializer}
    replaced: dict[str, str] = {}
    nodes = []
    graph.initializer.append(helper.make_tensor("ul2q.half", onnx.TensorProto.DOUBLE, [],
                                                [0.5]))
    for name, q in codes.items():
        init = next((by_name[n] for n in names.get(name, [name]) if n in by_name), None)
        if init is None:
            raise ValueError(f"model: the ONNX exporter kept no initializer named "
                             f"{' or '.join(names.get(name, [name]))}; cannot store it as codes")
        target, float_type = init.name, init.data_type
        shape = [1] * q.codes.ndim
        if q.axis is not None:
            shape[q.axis] = q.codes.shape[q.axis]
        prefix = f"ul2q.{target}"
        onnx_type, _ = _packed_type(q.bits)
        shifted = q.codes.astype(np.int64) - 1
        graph.initializer.remove(init)
        graph.initializer.extend([
            helper.make_tensor(f"{prefix}.codes", onnx_type, list(q.codes.shape),
                               shifted.reshape(-1).tolist()),
            numpy_helper.from_array(np.asarray(q.alpha, np.float64).reshape(shape),
                                    f"{prefix}.alpha"),
            numpy_helper.from_array(np.asarray(q.beta, np.float64).reshape(shape),
                                    f"{prefix}.beta"),
        ])
        nodes += [
            helper.make_node("Cast", [f"{prefix}.codes"], [f"{prefix}.q"],
                             to=onnx.TensorProto.DOUBLE),
            helper.make_node("Add", [f"{prefix}.q", "ul2q.half"], [f"{prefix}.centred"]),
            helper.make_node("Mul", [f"{prefix}.centred", f"{prefix}.alpha"],
                             [f"{prefix}.scaled"]),
            helper.make_node("Add", [f"{prefix}.scaled", f"{prefix}.beta"], [f"{prefix}.w64"]),
            helper.make_node("Cast", [f"{prefix}.w64"], [target], to=float_type),
        ]
        replaced[target] = f"{prefix}.codes"
    for node in reversed(nodes):
        graph.node.insert(0, node)
    onnx.checker.check_model(graph_model)
    Path(path).write_bytes(graph_model.SerializeToString())
    return replaced


__all__ = ["ONNX_OPSET", "export_model", "export_onnx", "layer_codes", "parameter_codes"]
