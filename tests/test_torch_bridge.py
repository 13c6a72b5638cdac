"""The PyTorch bridge ``ul2q_ref.torch``: bit-exact with the reference, straight-through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402
from ul2q_ref.crosscheck import check, vectors  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: PyTorch's thread pool only costs time here, badly so on busy machines."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vectors")
    vectors.write_suite(directory)
    return vectors.load_suite(directory)


def test_pairwise_sum_is_numpys_order_bit_for_bit():
    rng = np.random.default_rng(0)
    assert bridge.pairwise_sum(torch.full((1, 9), -0.0)).item() == 0.0  # +0.0, like NumPy
    assert not torch.signbit(bridge.pairwise_sum(torch.full((1, 9), -0.0))).item()
    for n in [1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 130, 147, 255, 256, 300, 1000, 4097,
              10007, 70000]:
        rows = rng.standard_normal((3, n)) * 10.0 ** rng.uniform(-5, 5, (3, 1))
        got = bridge.pairwise_sum(torch.from_numpy(rows)).numpy()
        assert same_bits(got, rows.sum(axis=1)), n


def test_moments_are_bit_identical_to_the_reference():
    rng = np.random.default_rng(1)
    sizes = list(range(1, 140)) + [255, 512, 1000, 4097, 20000]
    for index, n in enumerate(sizes):
        scale = 10.0 ** rng.uniform(-30, 30)
        w = rng.normal(rng.normal(), 1.0, n) * scale
        if index % 2:
            w = w.astype(np.float32)
        mean, std = uq.moments(w)
        got_mean, got_std = bridge.moments(torch.from_numpy(w))
        assert got_mean.item() == mean and got_std.item() == std, n


@pytest.mark.parametrize("values", [
    [1e-310, -3e-310, 2e-311],  # subnormal: rescaled up in two exact steps
    [1e308, -1.7e308, 5e307],   # near overflow
    [5e-324, 0.0, 0.0],
    [1e4 + 1e-3, 1e4, 1e4 - 2e-3],
    [3.0],
    [2.5, 2.5, 2.5],
])
def test_moments_at_the_edges(values):
    w = np.array(values)
    mean, std = uq.moments(w)
    got_mean, got_std = bridge.moments(torch.from_numpy(w))
    assert got_mean.item() == mean and got_std.item() == std


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("bits", [1, 2, 5, 8, 13, 16])
def test_fake_quantize_matches_the_reference_bit_for_bit(dtype, axis, bits):
    generator = torch.Generator().manual_seed(bits)
    w = torch.randn(6, 5, 7, generator=generator, dtype=dtype) * 0.05 + 0.01
    got = bridge.fake_quantize(w, bits, axis)
    expected = uq.fake_quantize(w.numpy(), bits, axis=axis)
    assert got.dtype == dtype and same_bits(got.numpy(), expected)
    quantized = bridge.quantize(w, bits, axis)
    reference = uq.quantize(w.numpy(), bits, axis=axis)
    assert np.array_equal(quantized.codes.numpy(), reference.codes)
    assert same_bits(quantized.alpha.numpy(), np.atleast_1d(np.float64(reference.alpha)))


def test_the_bridge_passes_the_checker_bit_for_bit(suite):
    cases = check.select_cases(suite.cases, schemes=["ul2q"], profiles=["exact"])
    assert len(cases) > 90
    report = check.check_suite(cases, check.function_provider(bridge.solve_crosscheck_request))
    assert report.failed == 0, report.render(quiet=True)
    assert all(outcome.bit_exact for outcome in report.outcomes)
    assert report.render().splitlines()[-1] == f"{len(cases)} passed, 0 failed"


def test_the_bridge_refuses_other_profiles_in_the_protocol(suite):
    cases = check.select_cases(suite.cases, profiles=["caffe"], patterns=["*-k2-float32-random"])
    report = check.check_suite(cases, check.function_provider(bridge.solve_crosscheck_request))
    assert report.failed == 1 and "exact profile only" in report.render()


def test_straight_through_gradient_and_shapes():
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    out = bridge.ul2q(w, 2, 0)
    assert out.shape == w.shape and out.dtype == w.dtype and out.requires_grad
    upstream = torch.randn_like(out)
    out.backward(upstream)
    assert torch.equal(w.grad, upstream)
    assert torch.unique(out.detach()[0]).numel() <= 4


def test_module_wrapper_and_parametrization():
    module = bridge.UL2Q(3, axis=0)
    assert "bits=3, axis=0" in repr(module)
    layer = torch.nn.Linear(8, 5)
    torch.nn.utils.parametrize.register_parametrization(layer, "weight", module)
    raw = layer.parametrizations.weight.original
    expected = uq.fake_quantize(raw.detach().numpy(), 3, axis=0)
    assert same_bits(layer.weight.detach().numpy(), expected)
    layer(torch.randn(2, 8)).sum().backward()
    assert raw.grad is not None and raw.grad.shape == raw.shape


def test_input_checks():
    with pytest.raises(TypeError, match="floating-point"):
        bridge.fake_quantize(torch.arange(4), 2)
    with pytest.raises(ValueError, match="NaN"):
        bridge.fake_quantize(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="bits must be an integer from 1 to 16"):
        bridge.UL2Q(0)
    with pytest.raises(ValueError, match="out of range"):
        bridge.fake_quantize(torch.ones(2, 2), 2, axis=2)
    assert bridge.fake_quantize(torch.tensor(2.5), 3).item() == 2.5  # 0-d, σ = 0


def test_docs_training_example_runs():
    text = (ROOT / "docs" / "crosscheck.md").read_text(encoding="utf-8")
    example = text.split("<!-- torch-example -->")[1].split("```python")[1].split("```")[0]
    assert len(example.strip().splitlines()) <= 25
    namespace: dict = {}
    exec(compile(example, "docs/crosscheck.md", "exec"), namespace)  # noqa: S102 - our docs
    assert namespace["accuracy"] > 0.9
