"""Caffe-style SGD and learning-rate policy tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ul2q_ref.nn.optim import SGD, LRSchedule, weights_only


def _params(dtype=np.float64):
    w = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=dtype)
    b = np.array([0.25, -1.0], dtype=dtype)
    return {"fc.weight": (w, np.zeros_like(w)), "fc.bias": (b, np.zeros_like(b))}


def _triples(params):
    return [(k, p, g) for k, (p, g) in params.items()]


def test_sgd_matches_hand_computed_caffe_updates():
    params = _params()
    opt = SGD(_triples(params), momentum=0.9, weight_decay=0.01)
    w, gw = params["fc.weight"]
    b, gb = params["fc.bias"]
    grads_w = [np.array([[0.1, 0.2], [-0.3, 0.4]]), np.array([[1.0, 0.0], [0.0, -1.0]])]
    grads_b = [np.array([0.5, -0.5]), np.array([0.1, 0.2])]
    lrs = [0.1, 0.05, 0.01]  # a changing rate tells Caffe's form apart from PyTorch's
    # hand-computed Caffe: v = m*v + lr*(g + wd*w); w -= v   (biases decayed too by default)
    ew, eb = w.copy(), b.copy()
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for step, lr in enumerate(lrs):
        gw[...] = grads_w[step % 2]
        gb[...] = grads_b[step % 2]
        vw = 0.9 * vw + lr * (gw + 0.01 * ew)
        vb = 0.9 * vb + lr * (gb + 0.01 * eb)
        ew, eb = ew - vw, eb - vb
        opt.step(lr)
        np.testing.assert_allclose(w, ew, rtol=1e-12)
        np.testing.assert_allclose(b, eb, rtol=1e-12)
    # first step written out by hand: w0 - 0.1*(g0 + 0.01*w0)
    w0 = np.array([[1.0, -2.0], [0.5, 3.0]])
    p = _params()
    opt1 = SGD(_triples(p), momentum=0.9, weight_decay=0.01)
    p["fc.weight"][1][...] = grads_w[0]
    opt1.step(0.1)
    np.testing.assert_allclose(p["fc.weight"][0], w0 - 0.1 * (grads_w[0] + 0.01 * w0))


def test_sgd_multipliers_and_weights_only():
    params = _params()
    w0, b0 = params["fc.weight"][0].copy(), params["fc.bias"][0].copy()
    opt = SGD(
        _triples(params),
        momentum=0.0,
        weight_decay=0.1,
        lr_mult={"fc.bias": 2.0},
        decay_mult=weights_only,
    )
    params["fc.bias"][1][...] = 1.0
    opt.step(0.5)
    np.testing.assert_allclose(params["fc.weight"][0], w0 - 0.5 * 0.1 * w0)  # decay only
    np.testing.assert_allclose(params["fc.bias"][0], b0 - 2 * 0.5 * 1.0)  # no decay, lr x2
    assert weights_only("conv1.weight") == 1.0
    assert weights_only("bn1.gamma") == weights_only("conv1.bias") == 0.0


def test_sgd_keeps_float32():
    params = _params(np.float32)
    opt = SGD(_triples(params), momentum=0.9, weight_decay=5e-4)
    params["fc.weight"][1][...] = 1.0
    opt.step(0.01)
    assert params["fc.weight"][0].dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state_dict().values())


def test_sgd_state_dict_round_trip():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((2, 2)) for _ in range(6)]

    def run(pa, opt, steps):
        for g in steps:
            pa["fc.weight"][1][...] = g
            opt.step(0.1)

    pa = _params()
    oa = SGD(_triples(pa), momentum=0.9, weight_decay=1e-3)
    run(pa, oa, grads)

    pb = _params()
    ob = SGD(_triples(pb), momentum=0.9, weight_decay=1e-3)
    run(pb, ob, grads[:3])
    state = ob.state_dict()
    assert set(state) == {"velocity.fc.weight", "velocity.fc.bias"}
    saved_w = {k: p.copy() for k, (p, _) in pb.items()}
    pc = _params()
    for k, (p, _) in pc.items():
        p[...] = saved_w[k]
    oc = SGD(_triples(pc), momentum=0.9, weight_decay=1e-3)
    oc.load_state_dict(state)
    run(pc, oc, grads[3:])
    np.testing.assert_array_equal(pc["fc.weight"][0], pa["fc.weight"][0])
    np.testing.assert_array_equal(pc["fc.bias"][0], pa["fc.bias"][0])
    state["velocity.fc.weight"][...] = 123.0  # state_dict returns copies
    assert not np.any(ob.velocity["fc.weight"] == 123.0)
    with pytest.raises(KeyError):
        oc.load_state_dict({"velocity.fc.weight": state["velocity.fc.weight"]})


def test_sgd_rejects_duplicates():
    w = np.zeros(2)
    with pytest.raises(ValueError):
        SGD([("a", w, w.copy()), ("a", w, w.copy())])


# --------------------------------------------------------------------------
# learning-rate policies
# --------------------------------------------------------------------------
def test_lr_fixed():
    s = LRSchedule("fixed", base_lr=0.05)
    assert s.lr_at(0, 0.0) == s.lr_at(10**6, 123.4) == 0.05


def test_lr_multistep_counts_passed_epoch_milestones():
    s = LRSchedule("multistep", base_lr=0.1, gamma=0.1, milestones=(10, 20))
    assert s.lr_at(0, 0.0) == pytest.approx(0.1)
    assert s.lr_at(999, 9.99) == pytest.approx(0.1)
    assert s.lr_at(1000, 10.0) == pytest.approx(0.01)  # a milestone counts once reached
    assert s.lr_at(1500, 15.0) == pytest.approx(0.01)
    assert s.lr_at(2500, 25.0) == pytest.approx(0.001)
    with pytest.raises(ValueError):
        LRSchedule("multistep", milestones=(20, 10))
    with pytest.raises(ValueError):
        LRSchedule("step")  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(
    it=st.integers(0, 10**6),
    base=st.floats(1e-5, 1.0),
    gamma=st.floats(1e-6, 1e-2),
    power=st.floats(0.1, 2.0),
)
def test_lr_inv_formula(it, base, gamma, power):
    s = LRSchedule("inv", base_lr=base, gamma=gamma, power=power)
    assert s.lr_at(it, it / 100.0) == pytest.approx(base * (1 + gamma * it) ** (-power))


def test_lr_inv_caffe_lenet_values():
    s = LRSchedule("inv", base_lr=0.01, gamma=1e-4, power=0.75)
    assert s.lr_at(0, 0.0) == pytest.approx(0.01)
    assert s.lr_at(10000, 0.0) == pytest.approx(0.01 * 2**-0.75)
