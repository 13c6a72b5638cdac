"""Sequential container and model registry tests."""

from __future__ import annotations

import numpy as np
import pytest

from ul2q_ref.nn import (
    MODEL_NAMES,
    SGD,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    build_model,
    softmax_cross_entropy,
)

INPUT = {"lenet5": (1, 28), "lenet5-bn": (1, 28), "cifarnet": (3, 32)}


def _batch(name: str, n: int = 4, seed: int = 0):
    c, s = INPUT[name]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c, s, s)).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shapes_and_dtypes(name):
    model = build_model(name, np.random.default_rng(0))
    x, y = _batch(name)
    out = model.forward(x, training=True)
    assert out.shape == (4, 10) and out.dtype == np.float32
    _, g = softmax_cross_entropy(out, y)
    dx = model.backward(g)
    assert dx.shape == x.shape and dx.dtype == np.float32
    for _, p, gr in model.parameters():
        assert p.dtype == gr.dtype == np.float32 and p.shape == gr.shape
    assert model.eval().forward(x).shape == (4, 10)


def test_custom_sizes():
    m = build_model("lenet5", np.random.default_rng(0), in_channels=3, num_classes=7, input_size=32)
    assert m.forward(np.zeros((2, 3, 32, 32), np.float32), True).shape == (2, 7)
    m = build_model("cifarnet", np.random.default_rng(0), num_classes=100, overlapping_pool=True)
    assert m.forward(np.zeros((2, 3, 32, 32), np.float32), True).shape == (2, 100)
    with pytest.raises(ValueError):
        build_model("resnet", np.random.default_rng(0))


def test_parameter_counts():
    rng = np.random.default_rng(0)
    # Caffe LeNet: 520 + 25,050 + 400,500 + 5,010 (Table II: 0.43 M)
    assert build_model("lenet5", rng).num_parameters() == 431_080
    # Caffe cifar10_full: 2,432 + 25,632 + 51,264 + 10,250
    assert build_model("cifarnet", rng).num_parameters() == 89_578
    assert build_model("cifarnet", rng, overlapping_pool=True).num_parameters() == 89_578


def test_lenet5_layout_and_quantizable_layers():
    model = build_model("lenet5", np.random.default_rng(0))
    assert [n for n, _ in model.quantizable_layers()] == ["conv1", "conv2", "fc1", "fc2"]
    names = [n for n, _, _ in model.parameters()]
    assert names == [
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
    ]  # fmt: skip
    assert model["conv2"].params["weight"].shape == (50, 20, 5, 5)
    assert model["fc1"].params["weight"].shape == (500, 800)
    assert model[0] is model["conv1"]
    bn = build_model("lenet5-bn", np.random.default_rng(0))
    assert [n for n, _ in bn.quantizable_layers()] == ["conv1", "conv2", "fc1", "fc2"]
    cif = build_model("cifarnet", np.random.default_rng(0))
    assert [n for n, _ in cif.quantizable_layers()] == ["conv1", "conv2", "conv3", "fc1"]


def test_xavier_init_range():
    model = build_model("lenet5", np.random.default_rng(0))
    w = model["conv2"].params["weight"]
    a = np.sqrt(3.0 / (20 * 5 * 5))
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.95 * a
    assert np.all(model["conv2"].params["bias"] == 0)
    he = build_model("lenet5", np.random.default_rng(0), init="he")
    assert np.std(he["fc1"].params["weight"]) == pytest.approx(np.sqrt(2 / 800), rel=0.02)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_model(name):
    a = build_model(name, np.random.default_rng(42)).state_dict()
    b = build_model(name, np.random.default_rng(42)).state_dict()
    c = build_model(name, np.random.default_rng(43)).state_dict()
    assert list(a) == list(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])


def test_state_dict_round_trip_with_buffers():
    src = build_model("lenet5-bn", np.random.default_rng(0))
    x, y = _batch("lenet5-bn", n=8)
    opt = SGD(src.parameters(), momentum=0.9, weight_decay=5e-4)
    for _ in range(2):  # change weights and BN running statistics
        _, g = softmax_cross_entropy(src.forward(x, training=True), y)
        src.backward(g, need_input_grad=False)
        opt.step(0.01)
    sd = src.state_dict()
    assert "bn1.running_mean" in sd and "bn3.running_var" in sd
    assert not np.allclose(sd["bn1.running_mean"], 0)
    dst = build_model("lenet5-bn", np.random.default_rng(1))
    dst.load_state_dict(sd)
    np.testing.assert_array_equal(dst.eval().forward(x), src.eval().forward(x))
    # copies, both ways
    sd["conv1.weight"][...] = 0
    assert not np.all(src["conv1"].params["weight"] == 0)
    bad = dict(sd)
    del bad["bn1.running_var"]
    with pytest.raises(KeyError):
        dst.load_state_dict(bad)
    dst.load_state_dict(bad, strict=False)
    bad["conv1.weight"] = np.zeros((1, 2))
    with pytest.raises(ValueError):
        dst.load_state_dict(bad, strict=False)


def test_train_eval_modes():
    model = build_model("lenet5-bn", np.random.default_rng(0))
    x, _ = _batch("lenet5-bn", n=4)
    assert model.training
    model.eval()
    np.testing.assert_array_equal(model.forward(x), model.forward(x))  # no dropout, fixed stats
    rm = model["bn1"].buffers["running_mean"].copy()
    model.forward(x)
    np.testing.assert_array_equal(model["bn1"].buffers["running_mean"], rm)
    model.train()
    a, b = model.forward(x), model.forward(x)
    assert not np.array_equal(a, b)  # dropout masks differ
    np.testing.assert_array_equal(model.forward(x, training=False), model.eval().forward(x))


def test_sequential_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    model = Sequential(
        [
            ("conv", Conv2d(2, 3, 3, padding=1, rng=rng)),
            ("bn", BatchNorm2d(3)),
            ("relu", ReLU()),
            ("pool", MaxPool2d(2)),
            ("flat", Flatten()),
            ("fc", Linear(12, 4, rng=rng)),
        ]
    ).astype(np.float64)
    x = rng.standard_normal((3, 2, 4, 4))
    y = np.array([0, 3, 1])

    def loss() -> float:
        return softmax_cross_entropy(model.forward(x, training=True), y)[0]

    _, g = softmax_cross_entropy(model.forward(x, training=True), y)
    dx = model.backward(g)
    eps = 1e-6
    checks = [(x, dx)] + [(p, gr.copy()) for _, p, gr in model.parameters()]
    for arr, analytic in checks:
        for idx in list(np.ndindex(arr.shape))[:: max(1, arr.size // 8)]:
            old = arr[idx]
            arr[idx] = old + eps
            fp = loss()
            arr[idx] = old - eps
            fm = loss()
            arr[idx] = old
            assert analytic[idx] == pytest.approx((fp - fm) / (2 * eps), rel=1e-4, abs=1e-8)
    # need_input_grad=False: same parameter gradients, no input gradient
    before = {n: gr.copy() for n, _, gr in model.parameters()}
    model.forward(x, training=True)
    assert model.backward(g, need_input_grad=False) is None
    for n, _, gr in model.parameters():
        np.testing.assert_allclose(gr, before[n])


def test_sequential_names():
    rng = np.random.default_rng(0)
    s = Sequential([Linear(2, 2, rng=rng), ReLU()])
    assert [n for n, _ in s] == ["0", "1"] and len(s) == 2
    with pytest.raises(ValueError):
        Sequential([("a", ReLU()), ("a", ReLU())])
    with pytest.raises(ValueError):
        Sequential([("a.b", ReLU())])
    assert "Linear(2, 2" in repr(s)


def test_lenet5_learns_a_tiny_batch():
    rng = np.random.default_rng(0)
    model = build_model("lenet5", rng)
    x, y = _batch("lenet5", n=32, seed=1)
    opt = SGD(model.parameters(), momentum=0.9, weight_decay=5e-4)
    losses = []
    for _ in range(15):
        loss, g = softmax_cross_entropy(model.forward(x, training=True), y)
        model.backward(g, need_input_grad=False)
        opt.step(0.01)
        losses.append(loss)
    assert losses[-1] < 0.5 * losses[0]


def test_dropout_rng_is_derived_from_build_rng():
    a = build_model("lenet5-bn", np.random.default_rng(5))
    b = build_model("lenet5-bn", np.random.default_rng(5))
    x, _ = _batch("lenet5-bn")
    np.testing.assert_array_equal(a.forward(x, True), b.forward(x, True))
    assert isinstance(a["drop1"], Dropout)
