"""A 2-layer TransformerEncoder language model with the embedding tied to the head (the head
defined first): every check of tests/torch_families, and quantize_model's options."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch_families as checks  # noqa: E402
from torch import nn  # noqa: E402

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402

BITS = 2
OPTIONS: dict = {}
VOCAB, WIDTH = 11, 8


class TinyLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lm_head = nn.Linear(WIDTH, VOCAB, bias=False)  # defined first on purpose
        self.embed = nn.Embedding(VOCAB, WIDTH)
        layer = nn.TransformerEncoderLayer(WIDTH, 2, 16, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.lm_head.weight = self.embed.weight  # tied

    def forward(self, tokens):
        return self.lm_head(self.encoder(self.embed(tokens)))


def build() -> nn.Module:
    torch.manual_seed(0)
    return TinyLM().train()  # dropout 0: train mode avoids the eval-only fused fast path


LAYERS = {f"encoder.layers.{i}.{name}": BITS for i in (0, 1)
          for name in ("self_attn.in_proj_weight", "self_attn.out_proj.weight",
                       "linear1.weight", "linear2.weight")}
EXPECTED = {"lm_head.weight": 8, "embed.weight": 8, **LAYERS}  # the tie follows the head


X = torch.randint(0, VOCAB, (2, 5))


def coverage_also(model, report) -> None:
    assert report.classifier == "lm_head"  # by name, not by definition order
    assert model.embed.parametrizations.weight.original is \
        model.lm_head.parametrizations.weight.original  # still one Parameter
    assert "lm_head.weight" in {e.name for e in report.entries if "embed" in e.name
                                for _ in [0]} or report.entries[1].tied == ("lm_head.weight",)


FAMILY = checks.Family(build, BITS, X, EXPECTED, OPTIONS, coverage_also=coverage_also)
(quantised, test_coverage, test_training_step, test_export_and_onnx,
 test_state_convert_remove_copy_and_second_call, test_meta_and_low_precision,
 test_compile_fullgraph) = checks.family_tests(FAMILY)


# --------------------------------------------------------------------------- the options


def test_embeddings_are_opt_in_and_an_untied_embedding_stays_float():
    model = build()
    model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())  # untie
    report = bridge.quantize_model(model, BITS)
    assert report["embed"] is None
    assert report.float_tensors()["embed.weight"] == "embedding (opt-in: embeddings=True)"
    assert bridge.quantize_model(_untied(), BITS, embeddings=True)["embed"] == BITS


def _untied() -> nn.Module:
    model = build()
    model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
    return model


def test_filter_fn_types_and_skip():
    report = bridge.quantize_model(build(), BITS,
                                   filter_fn=lambda module, fqn: "layers.0" not in fqn)
    assert report["encoder.layers.0.linear1"] is None and report["encoder.layers.1.linear1"] == 2
    assert report.float_tensors()["encoder.layers.0.linear1.weight"] == \
        "filter_fn returned False"
    report = bridge.quantize_model(build(), BITS, types=(nn.MultiheadAttention,))
    assert report["encoder.layers.0.self_attn.in_proj_weight"] == 2
    assert report["encoder.layers.0.linear1"] is None
    report = bridge.quantize_model(build(), BITS, skip=["encoder.layers.1", nn.Linear])
    assert report["encoder.layers.1.self_attn.in_proj_weight"] is None  # parent name
    assert report["encoder.layers.0.self_attn.in_proj_weight"] == 2
    assert report["encoder.layers.0.linear2"] is None  # by type
    assert report["lm_head"] is None and report["embed"] is None  # a skipped tie: float
    with pytest.raises(ValueError, match="skip names 'encoder.layer9'"):
        bridge.quantize_model(build(), BITS, skip=["encoder.layer9"])
    with pytest.raises(ValueError, match="classifier='nope' is not a Linear layer"):
        bridge.quantize_model(build(), BITS, classifier="nope")


def test_a_lazy_layer_is_reported_not_raised():
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2))
    report = bridge.quantize_model(model, BITS)
    assert report.float_tensors() == {
        "0.weight": "uninitialised (lazy module): run a forward first"}
    assert report["2"] == 8


def test_each_weight_is_quantised_once_per_forward(monkeypatch):
    from ul2q_ref.torch import modules

    model = build()
    bridge.quantize_model(model, BITS)
    calls = []
    quantise = modules.straight_through
    monkeypatch.setattr(modules, "straight_through",
                        lambda *args: (calls.append(1), quantise(*args))[1])
    for training in (True, False):
        model.train(training)
        for grad in (True, False):
            calls.clear()
            with torch.set_grad_enabled(grad):
                model(X)
            assert len(calls) == 2 * 4 + 2  # 4 weights per layer, the tied embedding and head
    modules._stop_caching(model)
    calls.clear()
    model(X)  # eval mode: TransformerEncoderLayer's fast-path checks read every weight again
    assert len(calls) > 2 * 4 + 2
    modules._cache_weights_per_forward(model)
    with pytest.raises(IndexError):
        model(X + VOCAB)  # a forward that raises closes its cache scope too
    from ul2q_ref.torch.modules import _SCOPE

    assert _SCOPE.depth == 0 and not _SCOPE.holders
    with torch.no_grad():
        model.encoder.layers[0].linear1.parametrizations.weight.original.mul_(2.0)
    expected = model.encoder.layers[0].linear1.weight  # outside a forward: recomputed
    assert torch.equal(expected, torch.from_numpy(uq.fake_quantize(
        model.encoder.layers[0].linear1.parametrizations.weight.original.detach().numpy(),
        BITS, axis=0)))
    bridge.remove_quantization(model)
    assert not model._forward_pre_hooks and not model._forward_hooks


def test_the_cache_changes_no_gradient():
    from ul2q_ref.torch.modules import _stop_caching

    model = build()
    bridge.quantize_model(model, BITS)
    torch.nn.functional.cross_entropy(model(X).flatten(0, 1), X.flatten()).backward()
    cached = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    _stop_caching(model)  # every read quantises again: the autograd graph without sharing
    torch.nn.functional.cross_entropy(model(X).flatten(0, 1), X.flatten()).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(cached[name], p.grad, rtol=1e-5, atol=1e-7)


def test_a_weight_read_without_gradient_first_still_gets_its_gradient():
    class ReadsTwice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(4, 3)

        def forward(self, x):
            with torch.no_grad():
                scale = self.layer.weight.abs().mean()  # no graph for this read
            return self.layer(x) * scale

    torch.manual_seed(0)
    model = ReadsTwice()
    bridge.quantize_model(model, BITS, classifier_bits=BITS)
    model(torch.randn(2, 4)).sum().backward()
    assert model.layer.parametrizations.weight.original.grad is not None
