"""ConvTranspose2d (plain and grouped, output channels on axis 1): the checks of
tests/torch_families."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch_families as checks  # noqa: E402
from torch import nn  # noqa: E402

from ul2q_ref import torch as bridge  # noqa: E402

BITS = 3
OPTIONS: dict = {}


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3, 2, 1), nn.ReLU(),
                         nn.ConvTranspose2d(6, 4, 4, 2, 1), nn.ReLU(),
                         nn.ConvTranspose2d(4, 6, 3, 1, 1, groups=2)).eval()


EXPECTED = {"0.weight": BITS, "2.weight": BITS, "4.weight": BITS}


@pytest.fixture
def quantised():
    model = build()
    parameters = len(list(model.parameters()))
    report = bridge.quantize_model(model, BITS, **OPTIONS)
    return model, report, parameters


X = torch.randn(2, 2, 8, 8)


def test_coverage(quantised):
    model, report, _ = quantised
    checks.check_coverage(model, report, EXPECTED)


def test_training_step(quantised):
    model, _, _ = quantised
    checks.check_training_step(model.train(), X)


def test_export_and_onnx(quantised, tmp_path):
    model, _, _ = quantised
    checks.check_export(model, X)
    checks.check_onnx_dynamo(model, X, tmp_path)
    checks.check_export_onnx(model, X, tmp_path)


def test_state_convert_remove_copy_and_second_call(quantised, tmp_path):
    model, _, parameters = quantised
    checks.check_state_dict_round_trip(build, BITS, OPTIONS, model, X)
    checks.check_convert(build, model, X, tmp_path)
    checks.check_remove_deepcopy_and_second_call(model, X, parameters, BITS)


def test_meta_and_low_precision():
    checks.check_meta_and_low_precision(build, BITS, OPTIONS, X)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_compile_fullgraph(quantised):
    model, _, _ = quantised
    checks.check_compile(model, X)

def test_per_output_channel_on_axis_1(quantised):
    model, report, _ = quantised
    assert {e.name: e.axis for e in report.entries} == {"0.weight": 0, "2.weight": 1,
                                                        "4.weight": 1}
    assert model[2].parametrizations.weight[0].axis == 1
    assert report.classifier is None  # no Linear at all
