"""ConvTranspose2d (plain and grouped, output channels on axis 1): the checks of
tests/torch_families."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch_families as checks  # noqa: E402
from torch import nn  # noqa: E402

BITS = 3
OPTIONS: dict = {}


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3, 2, 1), nn.ReLU(),
                         nn.ConvTranspose2d(6, 4, 4, 2, 1), nn.ReLU(),
                         nn.ConvTranspose2d(4, 6, 3, 1, 1, groups=2)).eval()


EXPECTED = {"0.weight": BITS, "2.weight": BITS, "4.weight": BITS}


X = torch.randn(2, 2, 8, 8)
FAMILY = checks.Family(build, BITS, X, EXPECTED, OPTIONS)
(quantised, test_coverage, test_training_step, test_export_and_onnx,
 test_state_convert_remove_copy_and_second_call, test_meta_and_low_precision,
 test_compile_fullgraph) = checks.family_tests(FAMILY)


def test_per_output_channel_on_axis_1(quantised):
    model, report, _ = quantised
    assert {e.name: e.axis for e in report.entries} == {"0.weight": 0, "2.weight": 1,
                                                        "4.weight": 1}
    assert model[2].parametrizations.weight[0].axis == 1
    assert report.classifier is None  # no Linear at all
