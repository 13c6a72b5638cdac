"""The paper's four networks in PyTorch: Table II parameter counts, forward and backward."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ul2q_ref import torch as bridge  # noqa: E402
from ul2q_ref.nn.models import build_model  # noqa: E402
from ul2q_ref.torch import models  # noqa: E402


def test_parameter_counts_of_table_ii():
    """Weights + biases + BatchNorm γ, β, counted from the prototxts' layer shapes."""
    lenet = 5 * 5 * 20 + 20 + 5 * 5 * 20 * 50 + 50 + 800 * 500 + 500 + 500 * 10 + 10
    assert models.parameter_count(models.LeNet5()) == lenet == 431_080  # 0.43M
    cifarnet = (5 * 5 * 3 * 32 + 32) + (5 * 5 * 32 * 32 + 32) + (5 * 5 * 32 * 64 + 64) \
        + 1024 * 10 + 10
    assert models.parameter_count(models.Cifarnet()) == cifarnet == 89_578  # paper: 0.279M
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
    vgg = sum(9 * i * o + o + 2 * o for i, o in convs) + 4096 * 1024 + 1024 + 10250
    assert models.parameter_count(models.VGG7()) == vgg
    assert round(vgg / 1e6, 2) == 5.35
    assert models.parameter_count(models.ResNet18()) == 11_689_512  # 11.69M


def test_lenet5_is_the_numpy_trainers_network():
    numpy_model = build_model("lenet5", __import__("numpy").random.default_rng(0))
    shapes = {k: v.shape for k, v in numpy_model.state_dict().items()}
    torch_shapes = {k: tuple(v.shape) for k, v in models.LeNet5().state_dict().items()}
    assert shapes == torch_shapes


@pytest.mark.parametrize("name, shape", [("lenet5", (2, 1, 28, 28)), ("cifarnet", (2, 3, 32, 32)),
                                         ("vgg7", (2, 3, 32, 32)), ("resnet18", (2, 3, 64, 64))])
def test_forward_and_backward_with_the_paper_configuration(name, shape):
    torch.manual_seed(0)
    model = models.MODELS[name]()
    chosen = bridge.quantize_model(model, 2)
    classifier = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    assert chosen[classifier] == (None if name == "resnet18" else 8)
    assert all(bits == 2 for n, bits in chosen.items() if n != classifier)
    out = model(torch.randn(*shape))
    assert out.shape == (2, 1000 if name == "resnet18" else 10)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters())
