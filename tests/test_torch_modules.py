"""UL2Q modules, state, quantize_model and the paper's configuration."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402
from ul2q_ref.torch import modules  # noqa: E402


class Net(torch.nn.Module):
    ul2q_classifier = "fc2"

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 3, 3)
        self.conv2 = torch.nn.Conv2d(3, 4, 3)
        self.fc1 = torch.nn.Linear(16, 8)
        self.fc2 = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def test_the_paper_configuration():
    model = Net()
    chosen = bridge.quantize_model(model, 2)
    assert chosen == {"conv1": 2, "conv2": 2, "fc1": 2, "fc2": 8}  # classifier max(k, 8)
    assert bridge.quantize_model(Net(), 12) == {"conv1": 12, "conv2": 12, "fc1": 12, "fc2": 12}
    layers = modules.quantized_layers(model)
    assert {name: layer.bits for name, layer in layers.items()} == chosen
    assert all(layer.axis == 0 for layer in layers.values())
    for name in chosen:  # weights quantised per output channel, biases float
        layer = getattr(model, name)
        raw = layer.parametrizations.weight.original.detach().numpy()
        assert np.array_equal(layer.weight.detach().numpy(),
                              uq.fake_quantize(raw, chosen[name], axis=0))
        assert not torch.nn.utils.parametrize.is_parametrized(layer, "bias")
    skipped = Net()
    skipped.ul2q_skip = ("fc2",)
    assert bridge.quantize_model(skipped, 2)["fc2"] is None  # like ResNet-18's fc
    assert bridge.quantize_model(Net(), 2, skip=["conv1"], classifier_bits=2) == {
        "conv1": None, "conv2": 2, "fc1": 2, "fc2": 2}


def test_plans_from_a_mapping_and_a_file(tmp_path):
    chosen = bridge.quantize_model(Net(), 2, plan={"conv1.weight": 4, "fc2": None})
    assert chosen == {"conv1": 4, "conv2": 2, "fc1": 2, "fc2": None}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"layers": {"conv2": 3, "fc1": {"bits": 5}}, "source": "x"}))
    assert bridge.quantize_model(Net(), 2, plan=path) == {"conv1": 2, "conv2": 3, "fc1": 5,
                                                          "fc2": 8}
    with pytest.raises(ValueError, match="plan names layers the model does not have: conv9"):
        bridge.quantize_model(Net(), 2, plan={"conv9": 2})
    with pytest.raises(ValueError, match=r"plan\['conv1'\] must be an integer from 1 to 16"):
        bridge.quantize_model(Net(), 2, plan={"conv1": 0})
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"plan.json: not a plan \(expected"):
        bridge.quantize_model(Net(), 2, plan=path)
    path.write_text("[" * 100_000 + "]" * 100_000)  # a hostile plan: one line, no recursion
    with pytest.raises(ValueError, match="plan.json") as error:
        bridge.quantize_model(Net(), 2, plan=path)
    assert "\n" not in str(error.value) and len(str(error.value)) < 300
    unknown = {f"layer{i}": 2 for i in range(300_000)}  # the error line names a few, not all
    with pytest.raises(ValueError, match="does not have: layer0, ") as error:
        bridge.quantize_model(Net(), 2, plan=unknown)
    assert len(str(error.value)) < 2_000


def test_state_dict_keeps_the_configuration_and_float_checkpoints_load():
    torch.manual_seed(1)
    float_model = Net()
    quantized = Net()
    bridge.quantize_model(quantized, 3, plan={"conv2": 5})
    state = quantized.state_dict()
    assert state["conv2.parametrizations.weight.0._extra_state"]["bits"] == 5
    restored = Net()
    bridge.quantize_model(restored, 3)  # conv2 at 3 bits until the state says 5
    restored.load_state_dict(state)
    assert restored.conv2.parametrizations.weight[0].bits == 5
    assert torch.equal(restored.conv2.weight, quantized.conv2.weight)
    # a float checkpoint loads into the quantised model (identity right_inverse)
    restored.load_state_dict(float_model.state_dict())
    assert torch.equal(restored.conv1.parametrizations.weight.original, float_model.conv1.weight)
    # assigning a weight stores it as the full-precision weights
    new = torch.randn_like(float_model.fc1.weight)
    restored.fc1.weight = new
    assert torch.equal(restored.fc1.parametrizations.weight.original, new)
    bad = dict(state)
    bad["conv1.parametrizations.weight.0._extra_state"] = {"format": "other"}
    with pytest.raises(ValueError, match="UL2Q extra state"):
        restored.load_state_dict(bad)


def test_remove_quantization_bakes_or_restores():
    model = Net()
    bridge.quantize_model(model, 2)
    quantised = model.conv1.weight.detach().clone()
    original = model.conv1.parametrizations.weight.original.detach().clone()
    baked = bridge.remove_quantization(model)
    assert not torch.nn.utils.parametrize.is_parametrized(baked.conv1)
    assert torch.equal(baked.conv1.weight, quantised)
    again = Net()
    bridge.quantize_model(again, 2)
    again.load_state_dict(model.state_dict())
    bridge.remove_quantization(again, bake=False)
    assert torch.equal(again.conv1.weight, quantised)  # it was loaded with baked weights
    assert not torch.equal(original, quantised)


def test_ul2q_module_arguments():
    module = bridge.UL2Q(3, axis=0)
    assert "bits=3, axis=0" in repr(module)
    with pytest.raises(ValueError, match="scheme must be 'ul2q'"):
        bridge.UL2Q(2, scheme="binary")
    with pytest.raises(ValueError, match="mode must be one of"):
        bridge.UL2Q(2, mode="gpu")


def test_a_layer_loads_checkpoints_after_its_quantisation_is_removed():
    model = Net()
    bridge.quantize_model(model, 2)
    bridge.remove_quantization(model, bake=False)
    model.load_state_dict(Net().state_dict())  # the float-checkpoint hook has nothing to do
    bridge.quantize_model(model, 2)  # and quantising again works
    model.load_state_dict(Net().state_dict())
