"""ResNet-18 (torchvision's module names, tiny widths): every check of tests/torch_families."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch_families as checks  # noqa: E402

from ul2q_ref import torch as bridge  # noqa: E402
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


@pytest.fixture
def quantised():
    model = build()
    parameters = len(list(model.parameters()))
    report = bridge.quantize_model(model, BITS)
    return model, report, parameters


X = torch.randn(2, 3, 32, 32)


def test_coverage(quantised):
    model, report, _ = quantised
    checks.check_coverage(model, report, expected())
    assert report.float_tensors() == {"fc.weight": "model.ul2q_skip"}
    assert report.classifier == "fc"


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
    checks.check_state_dict_round_trip(build, BITS, {}, model, X)
    checks.check_convert(build, model, X, tmp_path)
    checks.check_remove_deepcopy_and_second_call(model, X, parameters, BITS)


def test_meta_and_low_precision():
    checks.check_meta_and_low_precision(build, BITS, {}, X)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_compile_fullgraph(quantised):
    model, _, _ = quantised
    checks.check_compile(model, X)
