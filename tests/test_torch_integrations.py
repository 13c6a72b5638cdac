"""torchao's quantize_ and torch.ao's prepare_qat with μL2Q."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402


def small() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 4 * 4, 6), torch.nn.ReLU(),
                               torch.nn.Linear(6, 3))


def reference(layer: torch.nn.Module, bits: int, axis) -> np.ndarray:
    raw = layer.parametrizations.weight.original.detach().numpy()
    return uq.fake_quantize(raw, bits, axis=axis)


# --------------------------------------------------------------------------- torchao


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_torchao_quantize_with_filter_fn():
    pytest.importorskip("torchao", reason="torchao is an optional dependency")
    from torchao.quantization import quantize_

    model = small()
    quantize_(model, bridge.UL2QConfig(bits=3))  # torchao's default filter: Linear only
    assert set(bridge.quantized_parameters(model)) == {"3.weight", "5.weight"}
    assert np.array_equal(model[3].weight.detach().numpy(), reference(model[3], 3, 0))
    other = small()
    quantize_(other, bridge.UL2QConfig(bits=2, axis=None),
              filter_fn=lambda module, fqn: isinstance(module, torch.nn.Conv2d))
    assert set(bridge.quantized_parameters(other)) == {"0.weight"}
    assert np.array_equal(other[0].weight.detach().numpy(), reference(other[0], 2, None))
    other(torch.randn(2, 2, 6, 6)).sum().backward()  # trains: straight through
    assert other[0].parametrizations.weight.original.grad is not None
    with pytest.raises(ValueError, match="bits must be an integer from 1 to 16, got 0"):
        bridge.UL2QConfig(bits=0)
    with pytest.raises(ValueError, match="already quantised"):
        quantize_(other, bridge.UL2QConfig(bits=2),
                  filter_fn=lambda module, fqn: isinstance(module, torch.nn.Conv2d))


# --------------------------------------------------------------------------- torch.ao QAT


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_prepare_qat_trains_and_converts():
    from torch.ao.quantization import QConfig, prepare_qat

    model = small().train()
    model.qconfig = QConfig(activation=torch.nn.Identity,
                            weight=bridge.UL2QFakeQuantize.with_args(bits=2, axis=0))
    prepare_qat(model, inplace=True)  # passes factory_kwargs to the fake-quant
    assert type(model[3]).__module__.startswith("torch.ao.nn.qat")
    fake = model[3].weight_fake_quant
    assert isinstance(fake, bridge.UL2QFakeQuantize)
    x = torch.randn(2, 2, 6, 6)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).square().mean().backward()
    optimizer.step()
    w = model[3].weight.detach()
    assert np.array_equal(fake(model[3].weight).detach().numpy(),
                          uq.fake_quantize(w.numpy(), 2, axis=0))
    scale, zero_point = fake.calculate_qparams()
    expected = uq.quantize(w.numpy(), 2, axis=0)
    assert np.array_equal(scale.numpy(), expected.alpha)
    codes = torch.from_numpy(expected.codes.astype(np.float64))
    rebuilt = scale[:, None] * (codes - zero_point[:, None])  # torch.ao: scale·(q − zp)
    assert torch.allclose(rebuilt, torch.from_numpy(expected.dequantize(np.float64)),
                          rtol=1e-12, atol=1e-15)
    fake.disable_fake_quant()
    assert torch.equal(fake(model[3].weight), model[3].weight)
    fake.enable_fake_quant()
    with torch.no_grad():
        before = model(x)
    converted = bridge.convert_qat(copy.deepcopy(model))
    assert type(converted[3]).__name__ == "ParametrizedLinear"
    assert not hasattr(converted[3], "qconfig")
    with torch.no_grad():
        assert torch.equal(converted(x), before)
    codes = bridge.convert(converted)  # integer codes + (α, β) of the converted model
    assert set(codes) == {"0.weight", "3.weight", "5.weight"}
    baked = bridge.convert_qat(model, bake=True)
    assert type(baked[3]) is torch.nn.Linear
    with torch.no_grad():
        assert torch.equal(baked(x), before)


def test_fake_quantize_arguments():
    with pytest.raises(TypeError, match="unexpected arguments: dtype"):
        bridge.UL2QFakeQuantize(bits=2, dtype=torch.qint8)
    with pytest.raises(RuntimeError, match="has seen no tensor yet"):
        bridge.UL2QFakeQuantize().calculate_qparams()
    assert "bits=4" in repr(bridge.UL2QFakeQuantize(bits=4))
