"""The eager CPU fast path of the PyTorch bridge (issue 21, "Overhead").

In eager mode on CPU, :func:`ul2q_ref.torch.ops.straight_through` runs the operator's CPU
kernel without the dispatcher (through :class:`EagerStraightThrough` when a gradient is
needed); everywhere else it runs ``ul2q::fake_quantize``. These tests hold that the two routes
give the NumPy reference's bits and the straight-through gradient, that each route is taken
where the docstring says, and that the arguments are still checked on the fast route.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch bridge needs torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import ul2q_ref  # noqa: E402
from ul2q_ref.torch import UL2Q, ul2q  # noqa: E402
from ul2q_ref.torch.ops import EagerStraightThrough  # noqa: E402

_NUMPY = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def _reference(w: torch.Tensor, bits: int, axis: int | None) -> np.ndarray:
    """ŵ by the NumPy reference (bfloat16: computed from its exact float32 values in float64,
    then rounded once by torch, as the bridge documents)."""
    values = w.detach()
    if values.dtype == torch.bfloat16:
        wide = ul2q_ref.fake_quantize(values.float().numpy().astype(np.float64), bits,
                                      axis=axis, backend="reference")
        return torch.from_numpy(wide).to(torch.bfloat16).float().numpy()
    return ul2q_ref.fake_quantize(values.numpy(), bits, axis=axis, backend="reference")


class _OpRecorder(TorchDispatchMode):
    """Records the name of every operator dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_the_training_path_gives_the_reference_bits_and_passes_the_gradient(dtype, axis, bits):
    generator = torch.Generator().manual_seed(bits * 10 + (axis or 0))
    w = (torch.randn(6, 7, 3, generator=generator) * 0.05 + 0.01).to(dtype).requires_grad_(True)
    w_hat = ul2q(w, bits, axis)
    assert type(w_hat.grad_fn).__name__ == "EagerStraightThroughBackward"
    assert w_hat.dtype == dtype and w_hat.shape == w.shape and w_hat.is_contiguous()
    expected = _reference(w, bits, axis)
    got = w_hat.detach().float().numpy() if dtype == torch.bfloat16 else w_hat.detach().numpy()
    np.testing.assert_array_equal(got.view(np.uint8), expected.astype(got.dtype).view(np.uint8))
    upstream = torch.randn(w.shape, generator=generator).to(dtype)
    w_hat.backward(upstream)
    assert torch.equal(w.grad, upstream)  # ∂L/∂w = ∂L/∂ŵ, unchanged


def test_both_routes_give_the_same_bits_and_gradients():
    """The fast route and the operator (forced by a dispatch mode) agree exactly."""
    w = (torch.randn(64, 9) * 0.1).requires_grad_(True)
    fast = ul2q(w, 3, 0)
    (fast * fast).sum().backward()
    fast_grad = w.grad.clone()
    w.grad = None
    recorder = _OpRecorder()
    with recorder:
        slow = ul2q(w, 3, 0)
        (slow * slow).sum().backward()
    assert "ul2q.fake_quantize.default" in recorder.names
    assert torch.equal(fast.detach(), slow.detach())
    assert torch.equal(fast_grad, w.grad)  # 2ŵ on both routes


def test_the_fast_routes_do_not_dispatch_the_operator():
    """Eager CPU calls, with or without a gradient, never reach the dispatcher's ul2q op."""
    w = torch.randn(100, requires_grad=True)
    calls: list[str] = []
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    with profiler:
        ul2q(w, 2)
        with torch.no_grad():
            ul2q(w, 2)
    calls = [event.name for event in profiler.events()]
    assert "ul2q::fake_quantize" not in calls
    assert any("EagerStraightThrough" in name for name in calls)


def test_second_order_gradients_match_the_operator():
    """create_graph=True: the straight-through backward is differentiable (identity)."""
    results = []
    for force_operator in (False, True):
        w = torch.linspace(-1.0, 1.0, 50, dtype=torch.float64).requires_grad_(True)
        recorder = _OpRecorder() if force_operator else None
        if recorder is not None:
            recorder.__enter__()
        try:
            w_hat = ul2q(w, 2)
            (first,) = torch.autograd.grad((w_hat * w).sum(), w, create_graph=True)
            (second,) = torch.autograd.grad(first.sum(), w)
        finally:
            if recorder is not None:
                recorder.__exit__(None, None, None)
        results.append((first.detach(), second))
    # d/dw Σ ŵ·w = ŵ + w (straight through), and d/dw Σ(ŵ + w) = 1 + 1 = 2
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], torch.full((50,), 2.0, dtype=torch.float64))
    assert torch.equal(results[1][1], results[0][1])


def test_the_fast_route_still_checks_its_input():
    w = torch.randn(10, requires_grad=True)
    with pytest.raises(ValueError, match="bits"):
        ul2q(w, 0)
    bad = torch.tensor([0.0, float("nan"), 1.0], requires_grad=True)
    with pytest.raises(ValueError, match="NaN"):
        ul2q(bad, 2)
    with pytest.raises(ValueError, match="NaN"):
        UL2Q(2)(bad)


def test_a_zero_dimensional_weight_keeps_its_shape_on_the_training_path():
    w = torch.tensor(0.25, requires_grad=True)
    w_hat = ul2q(w, 2)
    assert w_hat.shape == () and isinstance(w_hat.grad_fn, torch.autograd.graph.Node)
    w_hat.backward()
    assert w.grad is not None and w.grad.shape == () and float(w.grad) == 1.0
    # a constant tensor (σ = 0) decodes to code 1: ŵ = 0·(1 − ½) + β = w
    assert float(w_hat.detach()) == 0.25


def test_the_eager_function_is_the_kernel_with_the_identity_gradient():
    w = torch.randn(33, 5, dtype=torch.float64, requires_grad=True)
    out = EagerStraightThrough.apply(w, 4, 1, "auto")
    np.testing.assert_array_equal(out.detach().numpy(), _reference(w, 4, 1))
    grad = torch.randn(33, 5, dtype=torch.float64)
    out.backward(grad)
    assert torch.equal(w.grad, grad)


# --------------------------------------------------------------------------- reusing ŵ's memory


def _big_layer() -> torch.nn.Linear:
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 256)  # 65,536 weights: above REUSE_FROM
    torch.nn.utils.parametrize.register_parametrization(layer, "weight", UL2Q(2, axis=0))
    return layer


def test_the_next_result_reuses_the_memory_of_a_result_nobody_holds():
    layer = _big_layer()
    with torch.no_grad():
        first = layer.weight.data_ptr()  # the tensor is dropped at once
        second = layer.weight
    assert second.data_ptr() == first


def test_a_result_still_held_is_never_overwritten():
    """A ŵ kept by the caller, by a view, by a NumPy view or by an autograd graph keeps its
    values when the weights change and ŵ is computed again."""
    layer = _big_layer()
    x = torch.randn(3, 256)
    holders = {}
    with torch.no_grad():
        holders["tensor"] = layer.weight
        holders["view"] = layer.weight[1:]
        holders["numpy"] = layer.weight.numpy()
    holders["graph"] = layer(x)  # the graph saves ŵ for the input gradient
    def values(held: object) -> np.ndarray:
        return held.detach().numpy().copy() if isinstance(held, torch.Tensor) else np.copy(held)

    expected = {name: values(held) for name, held in holders.items()}
    with torch.no_grad():
        layer.parametrizations.weight.original.mul_(-3.0).add_(0.5)
        for _ in range(3):
            layer.weight  # noqa: B018  (each call computes ŵ of the changed weights)
    for name, held in holders.items():
        np.testing.assert_array_equal(values(held), expected[name], err_msg=name)


def test_training_with_reuse_gives_the_bits_of_the_operator():
    """Ten SGD steps through the reusing eager route and through the operator (a dispatch
    mode forces it) end with bit-identical weights."""
    finals = []
    for force_operator in (False, True):
        layer = _big_layer()
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        x = torch.randn(16, 256, generator=torch.Generator().manual_seed(1))
        recorder = _OpRecorder() if force_operator else None
        if recorder is not None:
            recorder.__enter__()
        try:
            for _ in range(10):
                loss = layer(x).square().mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        finally:
            if recorder is not None:
                recorder.__exit__(None, None, None)
        if recorder is not None:
            assert recorder.names.count("ul2q.fake_quantize.default") == 10
        finals.append(layer.parametrizations.weight.original.detach().clone())
    assert torch.equal(finals[0], finals[1])


def test_the_spare_is_not_pickled_or_copied():
    import copy
    import pickle

    layer = _big_layer()
    with torch.no_grad():
        layer.weight  # noqa: B018
    quantiser = layer.parametrizations.weight[0]
    assert "_ul2q_spare" in quantiser.__dict__
    assert "_ul2q_spare" not in copy.deepcopy(quantiser).__dict__
    assert "_ul2q_spare" not in pickle.loads(pickle.dumps(quantiser)).__dict__
