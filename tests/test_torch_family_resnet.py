"""ResNet-18 (torchvision's module names, tiny widths): every check of tests/torch_families."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch_families as checks  # noqa: E402

from ul2q_ref.torch.models import ResNet18  # noqa: E402

BITS = 2


def build() -> torch.nn.Module:
    torch.manual_seed(0)
    return ResNet18(num_classes=10, width=4).eval()


def expected() -> dict[str, int | None]:
    convs = ["conv1.weight"]
    for stage in range(1, 5):
        for block in range(2):
            convs += [f"layer{stage}.{block}.conv1.weight", f"layer{stage}.{block}.conv2.weight"]
        if stage > 1:
            convs.append(f"layer{stage}.0.downsample.0.weight")
    return {**dict.fromkeys(convs, BITS), "fc.weight": None}  # the paper keeps fc float


X = torch.randn(2, 3, 32, 32)


def coverage_also(model, report) -> None:
    assert report.float_tensors() == {"fc.weight": "model.ul2q_skip"}
    assert report.classifier == "fc"


FAMILY = checks.Family(build, BITS, X, expected(), coverage_also=coverage_also)
(quantised, test_coverage, test_training_step, test_export_and_onnx,
 test_state_convert_remove_copy_and_second_call, test_meta_and_low_precision,
 test_compile_fullgraph) = checks.family_tests(FAMILY)
