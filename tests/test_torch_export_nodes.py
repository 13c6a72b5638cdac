"""``torch.export`` of a quantised model: one ``ul2q::fake_quantize`` node per quantised
tensor, however often the layers read it while the forward is traced."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
import test_torch_family_transformer as lm  # noqa: E402
import torch_families as checks  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402


class SelfAttention(nn.Module):
    """A bare MultiheadAttention: its forward reads ``in_proj_weight`` three times (an
    ``is None`` check, a dtype check, the projection)."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


def _quantised_attention() -> nn.Module:
    torch.manual_seed(0)
    model = SelfAttention()
    bridge.quantize_model(model, 2)
    return model


def test_multihead_attention_exports_one_node_per_weight():
    model = _quantised_attention()
    x = torch.randn(2, 5, 8)
    program = torch.export.export(model, (x,))
    weights = sorted(program.graph_signature.inputs_to_parameters[n.args[0].name]
                     for n in checks.ul2q_nodes(program))
    assert weights == ["attention.out_proj.parametrizations.weight.original",
                       "attention.parametrizations.in_proj_weight.original"]
    with torch.no_grad():
        assert torch.equal(program.module()(x), model(x))


def test_an_eval_mode_encoder_exports_one_node_per_weight():
    """In eval mode TransformerEncoderLayer's fast-path checks read every weight once more."""
    model = lm.build().eval()
    report = bridge.quantize_model(model, lm.BITS)
    program = torch.export.export(model, (lm.X,))
    assert len(checks.ul2q_nodes(program)) == 10  # 4 per layer, the tied embedding and head
    assert sum(e.bits is not None for e in report.entries) == 10
    # with gradients on, eager mode skips the fused inference path that the program cannot
    # take, so both run the same layers' arithmetic
    assert torch.equal(program.module()(lm.X), model(lm.X))


def test_a_quantised_submodule_exports_one_node_per_weight():
    inner = _quantised_attention()
    outer = nn.Sequential(nn.Linear(8, 8), inner)  # the hooks are on the quantised module
    program = torch.export.export(outer, (torch.randn(2, 5, 8),))
    assert len(checks.ul2q_nodes(program)) == 2


def test_export_leaves_no_cache_behind():
    model = _quantised_attention()
    with pytest.raises(AssertionError, match="embedding dimension of 8"):
        torch.export.export(model, (torch.randn(2, 5, 7),))  # the forward raises
    assert not parametrize._cache_enabled and not parametrize._cache
    torch.export.export(model, (torch.randn(2, 5, 8),))
    assert not parametrize._cache_enabled and not parametrize._cache
    original = model.attention.parametrizations.in_proj_weight.original
    with torch.no_grad():
        original.mul_(2.0)
    expected = uq.fake_quantize(original.detach().numpy(), 2, axis=0)
    assert np.array_equal(model.attention.in_proj_weight.detach().numpy(), expected)


def test_the_forward_keeps_its_signature_copies_and_removal():
    import copy

    model = _quantised_attention()
    x = torch.randn(2, 5, 8)
    program = torch.export.export(model, (), {"x": x})  # bound by the forward's own name
    assert [s.arg.name for s in program.graph_signature.input_specs][-1] == "x"
    twin = copy.deepcopy(model)
    assert twin.forward.__self__ is twin  # the copy's forward runs the copy
    with torch.no_grad():
        twin.attention.out_proj.parametrizations.weight.original.mul_(2.0)
        assert not torch.equal(twin(x), model(x))
    assert len(checks.ul2q_nodes(torch.export.export(twin, (x,)))) == 2
    bridge.remove_quantization(model)
    assert "forward" not in vars(model) and not checks.ul2q_nodes(
        torch.export.export(model, (x,)))
