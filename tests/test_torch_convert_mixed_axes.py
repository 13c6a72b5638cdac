"""convert of a model whose layers mix per-tensor and per-channel (α, β): one file, each
tensor with its own axis, read by the CLI and loaded back bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_torch_convert import cli  # noqa: E402  (the same `python -m ul2q_ref` runner)

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import io as uq_io  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402
from ul2q_ref.torch.modules import quantize_layer  # noqa: E402


def build() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 6, 3), torch.nn.ReLU(),
                               torch.nn.ConvTranspose2d(6, 4, 2), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3))


# layer index → (bits, axis of UL2Q): per tensor, per output channel of a ConvTranspose
# (axis 1), per output channel of a Linear
LAYERS = {0: (2, None), 2: (3, 1), 4: (4, 0)}


def quantised() -> torch.nn.Module:
    model = build()
    for index, (bits, axis) in LAYERS.items():
        quantize_layer(model[index], bits, axis)
    return model


def test_one_file_holds_per_tensor_and_per_channel_tensors(tmp_path):
    model = quantised()
    raw = {f"{i}.weight": model[i].parametrizations.weight.original.detach().numpy()
           for i in LAYERS}
    path = tmp_path / "mixed.npz"
    bridge.convert(model, path)
    arrays = uq_io.read_npz(path)
    for index, (bits, axis) in LAYERS.items():
        name = f"{index}.weight"
        expected = uq.quantize(raw[name], bits, axis=axis)  # the NumPy reference
        assert np.array_equal(arrays[f"quantized/{name}/codes"], expected.codes), name
        assert np.array_equal(arrays[f"quantized/{name}/alpha"], expected.alpha), name
        assert np.array_equal(arrays[f"quantized/{name}/beta"], expected.beta), name
        if axis is None:
            assert f"quantized/{name}/axis" not in arrays
            assert arrays[f"quantized/{name}/alpha"].size == 1
        else:
            assert int(arrays[f"quantized/{name}/axis"]) == axis
            assert arrays[f"quantized/{name}/alpha"].size == raw[name].shape[axis]

    inspected = cli("inspect", str(path), "--quiet")
    assert inspected.returncode == 0, inspected.stderr
    out = tmp_path / "float.npz"
    dequantized = cli("dequantize", str(path), "-o", str(out))
    assert dequantized.returncode == 0, dequantized.stderr
    with np.load(out) as decoded:
        for index, (bits, axis) in LAYERS.items():
            name = f"{index}.weight"
            assert np.array_equal(decoded[name], uq.fake_quantize(raw[name], bits, axis=axis))

    x = torch.randn(2, 2, 7, 7)
    reloaded = bridge.load_converted(build(), path)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))


def test_the_writer_wants_an_axis_for_every_tensor(tmp_path):
    from ul2q_ref.weights import Model, Tensor, quantize_model

    tensors = (Tensor("a.weight", np.ones((2, 3), np.float32) * [[1, 2, 3]], "weight"),
               Tensor("b.weight", np.arange(6, dtype=np.float32).reshape(3, 2), "weight"))
    source = Model(path="two", format="npz", tensors=tensors)
    with pytest.raises(ValueError, match="axis names no choice for tensor b.weight"):
        quantize_model(source, tensors, {"a.weight": 2, "b.weight": 2}, tmp_path / "m.npz",
                       {"a.weight": 0})
    assert not (tmp_path / "m.npz").exists()
