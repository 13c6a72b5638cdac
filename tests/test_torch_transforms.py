"""The operator called directly, and torch.func transforms through quantised models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ul2q_ref as uq  # noqa: E402
from ul2q_ref import torch as bridge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OP = torch.ops.ul2q.fake_quantize


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    bridge.quantize_model(model, 2, classifier_bits=3)
    return model


# --------------------------------------------------------------------------- the op itself


def test_the_schema_has_defaults_and_the_op_is_the_reference():
    schema = str(OP.default._schema)
    assert "SymInt? axis=None" in schema and 'str mode="auto"' in schema
    w = torch.randn(4, 5, dtype=torch.float64)
    assert np.array_equal(OP(w, 3).numpy(), uq.fake_quantize(w.numpy(), 3))
    assert np.array_equal(OP(w, 3, 1).numpy(), uq.fake_quantize(w.numpy(), 3, axis=1))


@pytest.mark.parametrize("args, error, message", [
    ((torch.arange(4), 2), TypeError, "w must be a floating-point tensor, got torch.int64"),
    ((torch.ones(3, dtype=torch.bool), 2), TypeError, "got torch.bool"),
    ((torch.ones(3, dtype=torch.complex64), 2), TypeError, "got torch.complex64"),
    ((torch.ones(3), 0), ValueError, "bits must be an integer from 1 to 16, got 0"),
    ((torch.ones(3), 17), ValueError, "bits must be an integer from 1 to 16, got 17"),
    ((torch.ones(3), 40), ValueError, "got 40"),
    ((torch.ones(3), 2, None, "bogus"), ValueError, "mode must be one of"),
    ((torch.ones(3), 2, 1), ValueError, "axis=1 is out of range"),
    ((torch.ones(0), 2), ValueError, "w is empty"),
])
def test_the_op_validates_like_the_public_functions(args, error, message):
    with pytest.raises(error, match=message):
        OP(*args)
    with pytest.raises(error, match=message):
            OP(args[0].to("meta"), *args[1:])


def test_the_checks_survive_python_dash_O():
    code = ("import torch, ul2q_ref.torch\n"
            "for bits in (0, 17, 40):\n"
            "    try:\n"
            "        torch.ops.ul2q.fake_quantize(torch.ones(3), bits)\n"
            "    except ValueError as error:\n"
            "        print(error)\n")
    run = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("bits must be an integer from 1 to 16") == 3


def test_zero_dimensional_tensors_keep_their_shape():
    w = torch.tensor(1.25)
    assert OP(w, 2).shape == () and bridge.ul2q(w, 2).shape == ()
    assert bridge.ul2q(w, 2, mode="device").shape == ()
    assert OP(w, 2).item() == 1.25  # one value: σ = 0, α = 0, ŵ = β = μ = w
    module = torch.nn.Module()
    module.scale = torch.nn.Parameter(torch.tensor(0.5))
    torch.nn.utils.parametrize.register_parametrization(module, "scale", bridge.UL2Q(2))
    assert module.scale.shape == () and module.scale.item() == 0.5
    module.scale.backward()
    assert module.parametrizations.scale.original.grad.item() == 1.0  # straight through


# --------------------------------------------------------------------------- torch.func


def test_grad_through_the_op_is_straight_through():
    w = torch.randn(4, 3, dtype=torch.float64)
    weight = torch.arange(12.0, dtype=torch.float64).reshape(4, 3)
    for axis in (None, 0, 1):
        grad = torch.func.grad(lambda t, a=axis: (bridge.ul2q(t, 2, a) * weight).sum())(w)
        assert torch.equal(grad, weight)
    legacy = torch.func.grad(lambda t: (bridge.UL2QFunction.apply(t, 2, 0) * weight).sum())(w)
    assert torch.equal(legacy, weight)


def test_functional_call_grad_equals_backward():
    model = mlp()
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(p, inputs, targets):
        logits = torch.func.functional_call(model, p, (inputs,))
        return torch.nn.functional.cross_entropy(logits, targets)

    grads = torch.func.grad(loss)(params, x, y)
    torch.nn.functional.cross_entropy(model(x), y).backward()  # the autograd engine's answer
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-6, atol=1e-7)


def test_per_sample_gradients_with_vmap_of_grad():
    model = mlp()
    x, y = torch.randn(5, 6), torch.randint(0, 3, (5,))
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(p, sample, target):
        logits = torch.func.functional_call(model, p, (sample[None],))
        return torch.nn.functional.cross_entropy(logits, target[None])

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(len(x)):  # one backward per sample
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(per_sample[name][i], p.grad, rtol=1e-6, atol=1e-7)


def test_jacrev_through_a_quantised_linear_layer():
    torch.manual_seed(1)
    layer = torch.nn.Linear(4, 3, bias=False)
    bridge.quantize_model(layer, 2, classifier_bits=2)
    x = torch.randn(4)
    params = {"parametrizations.weight.original": layer.parametrizations.weight.original.detach()}
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(layer, p, (x,)))(params)
    jacobian = jac["parametrizations.weight.original"]  # d y_i / d w_jk = [i = j] x_k
    expected = torch.einsum("ij,k->ijk", torch.eye(3), x)
    assert torch.equal(jacobian, expected)


def test_export_has_one_node_per_quantised_weight():
    model = mlp()
    x = torch.randn(2, 6)
    program = torch.export.export(model, (x,))
    targets = [str(node.target) for node in program.graph.nodes if node.op == "call_function"]
    assert targets.count("ul2q.fake_quantize.default") == 2
    assert torch.equal(program.module()(x), model(x))


def test_the_checks_cache_keys_on_every_argument():
    w2, w1 = torch.randn(3, 4), torch.randn(4)
    OP(w2, 2, 1)  # valid: cached
    OP(w2, 2, -1)
    with pytest.raises(ValueError, match="axis=1 is out of range"):
        OP(w1, 2, 1)  # the same bits, axis and mode, another ndim
    with pytest.raises(TypeError, match="floating-point"):
        OP(w2.to(torch.int32), 2, 1)  # dtype and emptiness are checked on every call
    with pytest.raises(ValueError, match="w is empty"):
        OP(torch.ones(0, 4), 2, 1)
    assert np.array_equal(OP(w2, 2, -1).numpy(), uq.fake_quantize(w2.numpy(), 2, axis=1))
    layer = bridge.UL2Q(2, axis=1)
    with pytest.raises(ValueError, match="axis=1 is out of range"):
        layer(w1)  # the module's fast path still reaches the operator's checks


def test_the_inference_fast_path_is_the_kernel_and_modes_still_see_the_operator():
    from torch.utils._python_dispatch import TorchDispatchMode

    w = torch.randn(6, 7)
    fast = bridge.ul2q(w, 3, 0)  # no gradient needed: the CPU kernel without the dispatcher
    assert fast.grad_fn is None
    assert np.array_equal(fast.numpy(), OP(w, 3, 0).numpy())
    seen = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    with Recorder():
        bridge.ul2q(w, 3, 0)
        bridge.UL2Q(3, 0)(w)
    assert seen.count("ul2q.fake_quantize.default") == 2
    trained = w.clone().requires_grad_(True)
    assert bridge.ul2q(trained, 3, 0).grad_fn is not None  # training: the operator
