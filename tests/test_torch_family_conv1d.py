"""Grouped Conv1d (groups=2 and depthwise) in an nn.Sequential: the checks of
tests/torch_families."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch_families as checks  # noqa: E402
from torch import nn  # noqa: E402

from ul2q_ref import torch as bridge  # noqa: E402

BITS = 2
OPTIONS: dict = {}


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(4, 8, 3, groups=2), nn.ReLU(),
                         nn.Conv1d(8, 8, 3, groups=8), nn.ReLU(),
                         nn.Conv1d(8, 6, 1, groups=2), nn.Flatten(), nn.Linear(6 * 6, 3)).eval()


EXPECTED = {"0.weight": BITS, "2.weight": BITS, "4.weight": BITS, "6.weight": 8}


@pytest.fixture
def quantised():
    model = build()
    parameters = len(list(model.parameters()))
    report = bridge.quantize_model(model, BITS, **OPTIONS)
    return model, report, parameters


X = torch.randn(2, 4, 10)


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

def test_the_classifier_of_a_sequential_is_its_last_linear(quantised):
    _, report, _ = quantised
    assert report.classifier == "6" and "nn.Sequential" in report.classifier_rule
