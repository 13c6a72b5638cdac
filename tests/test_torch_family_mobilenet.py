"""A MobileNetV2-style net (inverted residuals, depthwise 3×3, ReLU6; the classifier named
by the user): the checks of tests/torch_families."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch_families as checks  # noqa: E402
from torch import nn  # noqa: E402

from ul2q_ref import torch as bridge  # noqa: E402

BITS = 2
OPTIONS: dict = {"classifier": "classifier.1"}


class InvertedResidual(nn.Module):
    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        hidden = channels * expand
        self.conv = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.conv(x)


class MobileNetV2Style(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            InvertedResidual(8, 2), InvertedResidual(8, 3))
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(8, 5))

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def build() -> nn.Module:
    torch.manual_seed(0)
    return MobileNetV2Style().eval()


EXPECTED = {"features.0.weight": BITS,
            **{f"features.{b}.conv.{i}.weight": BITS for b in (3, 4) for i in (0, 3, 6)},
            "classifier.1.weight": 8}


X = torch.randn(2, 3, 16, 16)
FAMILY = checks.Family(build, BITS, X, EXPECTED, OPTIONS)
(quantised, test_coverage, test_training_step, test_export_and_onnx,
 test_state_convert_remove_copy_and_second_call, test_meta_and_low_precision,
 test_compile_fullgraph) = checks.family_tests(FAMILY)


def test_without_a_classifier_name_none_is_guessed():
    report = bridge.quantize_model(build(), BITS)  # the Linear is "classifier.1": no rule
    assert report.classifier is None and report["classifier.1"] == BITS
    assert "classifier=NAME" in report.classifier_rule
