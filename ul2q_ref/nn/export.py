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

from ..io import FileFormatError, quantized_arrays, quantized_from_arrays, read_npz, save_npz_atomic
from .models import Sequential
from .qat import quantize_tensor
from .train import TrainConfig, build, evaluate, load_checkpoint, prepare_data, restore

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


class DataError(ValueError):
    """The data to evaluate on cannot be loaded (the message names the --data value)."""


def load_data(config: TrainConfig, given: bool) -> tuple:
    """:func:`prepare_data` of `config`, with errors that blame the data, not the model file."""
    try:
        return prepare_data(config)
    except (OSError, ValueError) as error:
        origin = "--data" if given else "the data named in the model's configuration (pass " \
                                        "--data to use other data):"
        raise DataError(f"{origin} {config.data}: {str(error).strip()}") from None


def export(checkpoint: str | Path, output: str | Path) -> dict[str, Any]:
    """Write the integer model of a training checkpoint to `output`; return a summary."""
    state = load_checkpoint(checkpoint)
    config = state["config"]
    dataset, _, _ = load_data(config, given=False)
    model, layers = build(config, dataset)
    restore(checkpoint, config, model, None, state)
    arrays = integer_model(config, model, layers)
    save_npz_atomic(output, arrays)
    return {"config": config, "layers": layers, "arrays": len(arrays)}


def read_integer_model(path: str | Path) -> tuple[TrainConfig, dict[str, np.ndarray]]:
    """Read and validate an exported integer model: its configuration and its state, with
    every quantised tensor decoded (a tampered code book is a FileFormatError)."""
    data = read_npz(path)
    source = str(path)
    if "format" not in data or data["format"].shape != () or \
            str(data["format"]) != EXPORT_FORMAT:
        raise FileFormatError(f"{source}: not a ul2q-ref integer model")
    if "config" not in data or data["config"].shape != ():
        raise FileFormatError(f"{source}: the configuration is missing")
    try:
        config = TrainConfig.from_json(str(data["config"]))
    except (TypeError, ValueError, RecursionError) as error:
        raise FileFormatError(f"{source}: bad configuration ({error})") from None
    state: dict[str, np.ndarray] = {}
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in data.items():
        if key.startswith("float/"):
            if value.dtype.kind != "f" or not np.isfinite(value).all():
                raise FileFormatError(f"{source}: {key} must hold finite floats")
            state[key[6:]] = value
        elif key.startswith("quantized/") and key.count("/") == 2:
            tensor, field_name = key[len("quantized/"):].rsplit("/", 1)
            groups.setdefault(tensor, {})[field_name] = value
        elif key not in ("format", "config"):
            raise FileFormatError(f"{source}: unexpected array {key!r}")
    for tensor, fields in groups.items():
        try:
            q = quantized_from_arrays(fields, source=f"{source}: {tensor}")
        except ValueError as error:
            raise FileFormatError(str(error)) from None
        if tensor in state:
            raise FileFormatError(f"{source}: {tensor} is stored twice")
        with np.errstate(over="raise", invalid="raise"):
            try:
                state[tensor] = q.dequantize()
            except FloatingPointError:
                raise FileFormatError(f"{source}: {tensor} does not decode to finite "
                                      "numbers") from None
    return config, state


def _model_for(path: str | Path, config: TrainConfig, dataset, state, optimizer=None,
               quantized: bool = True):
    model, _ = build(config, dataset)
    if not quantized:
        for _, layer in model.quantizable_layers():
            layer.weight_quantizer = None
            layer.bias_quantizer = None
    restore(path, config, model, optimizer, {"model": state})
    return model


def load_integer_model(path: str | Path) -> tuple[TrainConfig, Sequential, Any]:
    """Rebuild a float model whose weights are the decoded codes of an exported model.

    The quantisers are removed: the decoded weights *are* the quantised weights.
    """
    config, state = read_integer_model(path)
    dataset, _, _ = load_data(config, given=False)
    return config, _model_for(path, config, dataset, state, quantized=False), dataset


def evaluate_path(path: str | Path, data: str | None = None) -> dict[str, Any]:
    """Test accuracy of a training checkpoint or an exported integer model.

    The file is read and validated first, then the data (`data`, or the configuration's):
    each error names what is wrong, the file or the data.
    """
    arrays = read_npz(path)
    kind = str(arrays["format"]) if "format" in arrays and arrays["format"].shape == () \
        else ""
    del arrays
    if kind == EXPORT_FORMAT:
        config, state = read_integer_model(path)
    else:
        checkpoint = load_checkpoint(path)
        config, state = checkpoint["config"], checkpoint["model"]
    if data is not None and data != config.data:
        config = replace(config, data=data)
    dataset, _, (test_x, test_y) = load_data(config, given=data is not None)
    model = _model_for(path, config, dataset, state, quantized=kind != EXPORT_FORMAT)
    return {
        "kind": "integer model" if kind == EXPORT_FORMAT else "training checkpoint",
        "config": config,
        "dataset": dataset,
        "test_images": len(test_y),
        "accuracy": evaluate(model, test_x, test_y, dataset),
    }
