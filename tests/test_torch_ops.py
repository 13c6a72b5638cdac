"""The torch operators: CPU kernel path, device path, checks, and the PyTorch toolchain."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402
from ul2q_ref.crosscheck import check, vectors  # noqa: E402
from ul2q_ref.torch import _cpu  # noqa: E402


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exact_cases(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vectors")
    vectors.write_suite(directory)
    return check.select_cases(vectors.load_suite(directory).cases, schemes=["ul2q"],
                              profiles=["exact"])


def small_cnn(bits: int = 2) -> torch.nn.Module:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 10))
    bridge.quantize_model(model, bits)
    return model


# --------------------------------------------------------------------------- exactness


def test_the_cpu_kernel_reads_the_tensors_own_memory():
    base = torch.randn(6, 5, 4, dtype=torch.float64)
    for w in [base, base.float(), base.transpose(0, 2), base[:, ::2]]:
        array = _cpu.as_array(w)
        assert array.__array_interface__["data"][0] == w.data_ptr()
        assert array.strides == tuple(s * w.element_size() for s in w.stride())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_the_cpu_path_is_the_reference_bit_for_bit(dtype):
    w = (torch.randn(5, 3, 7, generator=torch.Generator().manual_seed(3)) * 0.1).to(dtype)
    for axis in [None, 0, 2]:
        got = bridge.fake_quantize(w, 3, axis)
        assert same_bits(got.numpy(), uq.fake_quantize(w.numpy(), 3, axis=axis))


def test_the_replayed_summation_is_the_reference_bit_for_bit():
    rng = np.random.default_rng(4)
    for n in [1, 7, 9, 129, 1000, 4097]:
        rows = rng.normal(3.0, 2.0, (3, n)) * 10.0 ** rng.uniform(-20, 20)
        mean, std = bridge.row_moments(torch.from_numpy(rows))
        expected = [uq.moments(row) for row in rows]
        assert mean.tolist() == [m for m, _ in expected]
        assert std.tolist() == [s for _, s in expected]


def test_exact_mode_matches_the_reference_through_the_checker(exact_cases, monkeypatch):
    # "exact" off the CPU replays NumPy's order; force that code path on the CPU
    monkeypatch.setattr(bridge.ops, "_use_kernel", lambda w, mode: False)
    calls = []

    def solve(request):
        calls.append(request["id"])
        return bridge.solve_crosscheck_request(request, mode="exact")

    report = check.check_suite(exact_cases, check.function_provider(solve))
    assert report.failed == 0 and len(calls) == len(exact_cases), report.render(quiet=True)


def test_the_device_path_is_within_the_stated_bounds(exact_cases):
    """mode="device": torch reductions, checked with the vectors' own stated tolerances."""

    def solve(request):
        return bridge.solve_crosscheck_request(request, mode="device")

    strict = check.check_suite(exact_cases, check.function_provider(solve))
    stated = check.check_suite(exact_cases, check.function_provider(solve),
                               check.Options(stats_ulps="stated"))
    assert stated.failed == 0, stated.render(quiet=True)
    # not trivially exact: torch's summation order differs from NumPy's on some cases
    assert strict.failed > 0


def test_the_device_encode_and_decode_are_bit_exact_given_alpha_beta():
    rng = np.random.default_rng(5)
    w = rng.normal(0.0, 1.0, (4, 300))
    alpha, beta = np.abs(rng.normal(0.5, 0.1, 4)), rng.normal(0.0, 0.1, 4)
    tensor = torch.from_numpy(w)
    codes = bridge.ops._device_codes(tensor, torch.from_numpy(alpha), torch.from_numpy(beta), 3,
                                     0)
    expected = uq.encode(w, alpha, beta, 3, axis=0)
    assert np.array_equal(codes.numpy(), expected)
    decoded = bridge.ops._device_decode(codes, torch.from_numpy(alpha), torch.from_numpy(beta),
                                        0, torch.float32)
    reference = uq.Quantized(codes=expected, alpha=alpha, beta=beta, zero_point=0.5, bits=3,
                             lam=uq.optimal_lambda(3), axis=0, scheme="ul2q",
                             dtype=np.dtype(np.float32))
    assert same_bits(decoded.numpy(), reference.dequantize())


# --------------------------------------------------------------------------- input checks


def test_bad_input_gives_clear_errors():
    w = torch.randn(3, 4)
    with pytest.raises(TypeError, match="floating-point tensor, got torch.int64"):
        bridge.fake_quantize(torch.arange(4), 2)
    with pytest.raises(TypeError, match="axis must be None or an integer, got True"):
        bridge.fake_quantize(w, 2, True)
    with pytest.raises(TypeError, match="axis must be None or an integer"):
        bridge.UL2Q(2, axis=True)
    with pytest.raises(TypeError, match="bits must be an integer"):
        bridge.fake_quantize(w, True)
    with pytest.raises(ValueError, match="mode must be one of"):
        bridge.fake_quantize(w, 2, mode="fast")
    with pytest.raises(ValueError, match="non-finite"):
        bridge.fake_quantize(torch.tensor([1.0, float("inf")]), 2)
    with pytest.raises(ValueError, match="alpha must be finite"):
        bridge.encode(w, float("nan"), 0.0, 2)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        bridge.encode(w, -1.0, 0.0, 2)
    with pytest.raises(ValueError, match="beta must be finite"):
        bridge.encode(w, 1.0, float("inf"), 2)
    with pytest.raises(ValueError, match="one value per channel"):
        bridge.encode(w, torch.ones(2), 0.0, 2, axis=0)
    with pytest.raises(TypeError, match="codes must be an integer tensor"):
        bridge.decode(w, 1.0, 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_and_inf_are_found_anywhere(dtype):
    """The CPU path skips its own pass when the statistics prove finiteness: try every spot."""
    for bad in [float("nan"), float("inf"), -float("inf")]:
        for base in [torch.full((3, 10), 2.0), torch.randn(3, 10), torch.zeros(3, 10)]:
            for index in [(0, 0), (1, 3), (2, 9)]:
                w = base.to(dtype).clone()
                w[index] = bad
                for axis in [None, 0, 1]:
                    with pytest.raises(ValueError, match="non-finite"):
                        bridge.fake_quantize(w, 2, axis)
                    with pytest.raises(ValueError, match="non-finite"):
                        bridge.moments(w, axis)
                    with pytest.raises(ValueError, match="non-finite"):
                        bridge.encode(w, 1.0 if axis is None else torch.ones(w.shape[axis]),
                                      0.0, 2, axis)
    big = torch.tensor([1e308, 1e308, -1e308], dtype=torch.float64)  # finite: no error
    assert torch.isfinite(bridge.fake_quantize(big, 2)).all()


def test_the_device_path_checks_at_run_time_without_reading_the_host():
    with pytest.raises(RuntimeError, match="NaN"):
        bridge.fake_quantize(torch.tensor([1.0, float("nan"), 2.0]), 2, mode="device")


# --------------------------------------------------------------------------- the toolchain


def test_meta_and_fake_tensor_shape_inference():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with torch.device("meta"):
        model = small_cnn()
        out = model(torch.empty(8, 1, 8, 8))
    assert out.shape == (8, 10) and out.device.type == "meta"
    with FakeTensorMode():
        model = small_cnn()
        out = model(torch.empty(3, 1, 8, 8))
        q = bridge.quantize(torch.empty(5, 7), 9, axis=1)
    assert out.shape == (3, 10) and q.codes.shape == (5, 7) and q.codes.dtype == torch.int16
    assert q.alpha.shape == (7,)


def test_vmap_and_torch_func():
    w = torch.randn(5, 4, 3, dtype=torch.float64)
    for axis in [None, 0, 1]:
        batched = torch.vmap(lambda t, a=axis: bridge.ul2q(t, 2, a))(w)
        assert torch.equal(batched, torch.stack([bridge.ul2q(t, 2, axis) for t in w]))
    weight = torch.arange(12.0, dtype=torch.float64).reshape(4, 3)
    grad = torch.func.grad(lambda t: (bridge.UL2QFunction.apply(t, 2, 0) * weight).sum())(w[0])
    assert torch.equal(grad, weight)  # straight through


def test_torch_export():
    model = small_cnn()
    x = torch.randn(4, 1, 8, 8)
    program = torch.export.export(model, (x,))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert "ul2q.fake_quantize.default" in ops
    assert torch.equal(program.module()(x), model(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inductor imports torch.jit
def test_torch_compile_fullgraph_inductor_matches_eager():
    """One small compile (inductor builds C++: tens of seconds here)."""
    torch.manual_seed(0)
    model = small_cnn()

    class WithWeights(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x), [self.inner[i].weight for i in (0, 2, 5)]

    wrapped = WithWeights(model)
    x = torch.randn(4, 1, 8, 8)
    compiled = torch.compile(wrapped, fullgraph=True)
    out, weights = compiled(x)
    out.square().sum().backward()
    compiled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    eager_out, eager_weights = wrapped(x)
    eager_out.square().sum().backward()
    for got, expected in zip(weights, eager_weights, strict=True):
        assert same_bits(got.detach().numpy(), expected.detach().numpy())
    torch.testing.assert_close(out, eager_out, rtol=1e-5, atol=1e-6)
    for got, p in zip(compiled_grads, model.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("values, dtype", [([3e38, -3e38, 1e38], torch.float32),
                                           ([65504.0, -65504.0, 0.0], torch.float16)])
def test_cpu_op_refuses_a_reconstruction_the_dtype_cannot_hold(values, dtype):
    from ul2q_ref.codebook import UnrepresentableError

    w = torch.tensor(values, dtype=dtype)
    with pytest.raises(UnrepresentableError, match=str(dtype).split(".")[1]):
        bridge.fake_quantize(w, 2)
    reference = np.asarray(values, dtype=np.float64)  # float64 holds every level: no error
    assert np.isfinite(uq.fake_quantize(reference, 2)).all()
