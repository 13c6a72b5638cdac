"""Grouped Conv1d (groups=2 and depthwise) in an nn.Sequential: the checks of
tests/torch_families."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch_families as checks  # noqa: E402
from torch import nn  # noqa: E402

BITS = 2
OPTIONS: dict = {}


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(4, 8, 3, groups=2), nn.ReLU(),
                         nn.Conv1d(8, 8, 3, groups=8), nn.ReLU(),
                         nn.Conv1d(8, 6, 1, groups=2), nn.Flatten(), nn.Linear(6 * 6, 3)).eval()


EXPECTED = {"0.weight": BITS, "2.weight": BITS, "4.weight": BITS, "6.weight": 8}


X = torch.randn(2, 4, 10)
FAMILY = checks.Family(build, BITS, X, EXPECTED, OPTIONS)
(quantised, test_coverage, test_training_step, test_export_and_onnx,
 test_state_convert_remove_copy_and_second_call, test_meta_and_low_precision,
 test_compile_fullgraph) = checks.family_tests(FAMILY)


def test_the_classifier_of_a_sequential_is_its_last_linear(quantised):
    _, report, _ = quantised
    assert report.classifier == "6" and "nn.Sequential" in report.classifier_rule
