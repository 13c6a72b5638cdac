"""Export a trained model as its integer form, and evaluate either form.

The integer model holds, for every quantised layer, the codes (int8/int16/int32) and the code
book (α, β, z, bits, scheme) of its weights (and of its bias when biases were quantised),
plus every parameter that stays in floating point (unquantised biases, BatchNorm). Decoding
the codes gives exactly the weights the trained model's quantised forward pass uses, so the
exported model's accuracy equals the trained model's, bit for bit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..io import quantized_arrays, quantized_from_arrays, save_npz_atomic
from .models import Sequential
from .qat import quantize_tensor
from .train import TrainConfig, build, evaluate, load_checkpoint, prepare_data

EXPORT_FORMAT = "ul2q-ref/integer-model-v1"


def integer_model(config: TrainConfig, model: Sequential,
                  layers: dict[str, tuple[str, int | None]]) -> dict[str, np.ndarray]:
    """The arrays of the exported integer model (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(EXPORT_FORMAT),
        "config": np.array(config.to_json()),
    }
    quantized_names = set()
    for name, layer in model.quantizable_layers():
        scheme, bits = layers[name]
        if scheme == "float":
            continue
        parts = ["weight"] + (["bias"] if config.quantize_bias and layer.has_bias else [])
        for part in parts:
            q = quantize_tensor(scheme, bits, layer.params[part], backend=config.backend)
            for key, value in quantized_arrays(q).items():
                arrays[f"quantized/{name}.{part}/{key}"] = value
            quantized_names.add(f"{name}.{part}")
    for key, value in model.state_dict().items():
        if key not in quantized_names:
            arrays[f"float/{key}"] = value
    return arrays


def export(checkpoint: str | Path, output: str | Path) -> dict[str, Any]:
    """Write the integer model of a training checkpoint to `output`; return a summary."""
    state = load_checkpoint(checkpoint)
    config = state["config"]
    dataset, _, _ = prepare_data(config)
    model, layers = build(config, dataset)
    model.load_state_dict(state["model"])
    arrays = integer_model(config, model, layers)
    save_npz_atomic(output, arrays)
    return {"config": config, "layers": layers, "arrays": len(arrays)}


def load_integer_model(path: str | Path) -> tuple[TrainConfig, Sequential, Any]:
    """Rebuild a float model whose weights are the decoded codes of an exported model.

    The quantisers are removed: the decoded weights *are* the quantised weights.
    """
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data.files or str(data["format"]) != EXPORT_FORMAT:
            raise ValueError(f"{path} is not a ul2q-ref integer model")
        config = TrainConfig.from_json(str(data["config"]))
        float_state = {k[6:]: data[k] for k in data.files if k.startswith("float/")}
        groups: dict[str, dict[str, np.ndarray]] = {}
        for key in data.files:
            if key.startswith("quantized/"):
                tensor, field_name = key[len("quantized/"):].rsplit("/", 1)
                groups.setdefault(tensor, {})[field_name] = data[key]
    dataset, _, _ = prepare_data(config)
    model, _ = build(config, dataset)
    for _, layer in model.quantizable_layers():
        layer.weight_quantizer = None
        layer.bias_quantizer = None
    state = dict(float_state)
    for tensor, fields in groups.items():
        q = quantized_from_arrays(fields, source=f"{path}: {tensor}")
        state[tensor] = q.dequantize()
    model.load_state_dict(state)
    return config, model, dataset


def evaluate_path(path: str | Path, data: str | None = None) -> dict[str, Any]:
    """Test accuracy of a training checkpoint or an exported integer model."""
    with np.load(path, allow_pickle=False) as archive:
        kind = str(archive["format"]) if "format" in archive.files else ""
    if kind == EXPORT_FORMAT:
        config, model, dataset = load_integer_model(path)
    else:
        state = load_checkpoint(path)
        config = state["config"]
        dataset, _, _ = prepare_data(config)
        model, _ = build(config, dataset)
        model.load_state_dict(state["model"])
    if data is not None and data != config.data:
        config = replace(config, data=data)
        dataset = None
    dataset, _, (test_x, test_y) = prepare_data(config, dataset)
    return {
        "kind": "integer model" if kind == EXPORT_FORMAT else "training checkpoint",
        "config": config,
        "dataset": dataset,
        "test_images": len(test_y),
        "accuracy": evaluate(model, test_x, test_y, dataset),
    }
