"""Layer forward/backward tests: finite differences in float64, STE hook, dtypes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ul2q_ref.nn.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    ReLU,
    col2im_gemm,
    im2col,
)
from ul2q_ref.nn.losses import accuracy, log_softmax, softmax, softmax_cross_entropy

FAST = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``; perturbs x in place."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        fp = f()
        x[idx] = old - eps
        fm = f()
        x[idx] = old
        g[idx] = (fp - fm) / (2 * eps)
    return g


def check_layer_grads(
    layer: Layer,
    x: np.ndarray,
    rng: np.random.Generator,
    training: bool = True,
    before_forward: Callable[[], None] | None = None,
) -> None:
    """Compare backward with finite differences of ``L = sum(forward(x) * R)`` for x and params."""
    layer.astype(np.float64)
    x = x.astype(np.float64)

    def fwd() -> np.ndarray:
        if before_forward is not None:
            before_forward()
        return layer.forward(x, training)

    r = rng.standard_normal(fwd().shape)

    def loss() -> float:
        return float(np.sum(fwd() * r))

    fwd()
    dx = layer.backward(r)
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=1e-5, atol=1e-7)
    for k, p in layer.params.items():
        np.testing.assert_allclose(
            analytic[k], numerical_grad(loss, p), rtol=1e-5, atol=1e-7, err_msg=k
        )


def naive_conv2d(x, w, b, stride, padding):
    """Direct loop convolution used as the reference (int or (h, w) stride/padding)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += b[None, :, None, None]
    return y


def channels_last(x: np.ndarray) -> np.ndarray:
    """Same logical NCHW array, channels-last memory (like a Conv2d output)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


conv_cases = st.fixed_dictionaries(
    {
        "n": st.integers(1, 3),
        "c": st.integers(1, 3),
        "o": st.integers(1, 3),
        "h": st.integers(4, 8),
        "w": st.integers(4, 8),
        "k": st.integers(1, 3),
        "stride": st.integers(1, 2),
        "padding": st.integers(0, 1),
        "bias": st.booleans(),
        "channels_last": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------
@FAST
@given(conv_cases)
def test_conv2d_forward_matches_naive(case):
    rng = np.random.default_rng(case["seed"])
    conv = Conv2d(
        case["c"], case["o"], case["k"], case["stride"], case["padding"], case["bias"], rng=rng
    ).astype(np.float64)
    if case["bias"]:
        conv.params["bias"][...] = rng.standard_normal(case["o"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    if case["channels_last"]:
        x = channels_last(x)
    y = conv.forward(x, training=True)
    ref = naive_conv2d(
        x, conv.params["weight"], conv.params.get("bias"), case["stride"], case["padding"]
    )
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


@FAST
@given(conv_cases)
def test_conv2d_backward_finite_differences(case):
    rng = np.random.default_rng(case["seed"])
    conv = Conv2d(
        case["c"], case["o"], case["k"], case["stride"], case["padding"], case["bias"], rng=rng
    )
    conv.params["weight"][...] = rng.standard_normal(conv.params["weight"].shape)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    if case["channels_last"]:
        x = channels_last(x)
    check_layer_grads(conv, x, rng)


def col2im(cols, x_shape, kernel, stride, padding):
    """The adjoint of im2col by brute force: scatter-add every patch entry, one at a time.

    cols[(n, i, j), (u, v, c)] goes to x_pad[n, c, s*i + u, s*j + v]; the padding is cut off.
    """
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for row in range(cols.shape[0]):
        image, rest = divmod(row, ho * wo)
        i, j = divmod(rest, wo)
        for column in range(cols.shape[1]):
            offset, channel = divmod(column, c)
            u, v = divmod(offset, kw)
            padded[image, channel, sh * i + u, sw * j + v] += cols[row, column]
    return padded[:, :, ph:ph + h, pw:pw + w]


@FAST
@given(conv_cases)
def test_im2col_col2im_are_adjoint(case):
    rng = np.random.default_rng(case["seed"])
    k, s, p = (case["k"],) * 2, (case["stride"],) * 2, (case["padding"],) * 2
    shape = (case["n"], case["c"], case["h"], case["w"])
    x = rng.standard_normal(shape)
    if case["channels_last"]:
        x = channels_last(x)
    cols, ho, wo = im2col(x, k, s, p)
    assert cols.shape == (case["n"] * ho * wo, case["k"] ** 2 * case["c"])
    d = rng.standard_normal(cols.shape)
    # <im2col(x), d> == <x, col2im(d)>
    np.testing.assert_allclose(np.sum(cols * d), np.sum(x * col2im(d, shape, k, s, p)))
    w2 = rng.standard_normal((case["o"], cols.shape[1]))
    g = rng.standard_normal((cols.shape[0], case["o"]))
    np.testing.assert_allclose(
        col2im_gemm(g, w2, shape, k, s, p), col2im(g @ w2, shape, k, s, p), atol=1e-12
    )


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [((3, 2), (2, 1), (1, 0)), ((1, 3), (1, 2), (0, 1))]
)
def test_conv2d_rectangular(kernel, stride, padding, layout):
    rng = np.random.default_rng(1)
    conv = Conv2d(2, 3, kernel, stride, padding, rng=rng)
    conv.params["bias"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 7, 6))
    if layout == "channels_last":
        x = channels_last(x)
    y = conv.astype(np.float64).forward(x, True)
    ref = naive_conv2d(x, conv.params["weight"], conv.params["bias"], stride, padding)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)
    check_layer_grads(conv, x, rng)


def test_conv2d_skip_input_grad():
    rng = np.random.default_rng(0)
    conv = Conv2d(2, 3, 3, padding=1, rng=rng)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    g = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    conv.forward(x, True)
    dx = conv.backward(g)
    gw = conv.grads["weight"].copy()
    conv.forward(x, True)
    assert conv.backward(g, need_input_grad=False) is None
    np.testing.assert_array_equal(conv.grads["weight"], gw)
    assert dx.shape == x.shape


# --------------------------------------------------------------------------
# linear
# --------------------------------------------------------------------------
@FAST
@given(
    n=st.integers(1, 3),
    fin=st.integers(1, 6),
    fout=st.integers(1, 5),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_backward_finite_differences(n, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    lin = Linear(fin, fout, bias, rng=rng)
    if bias:
        lin.params["bias"][...] = rng.standard_normal(fout)
    x = rng.standard_normal((n, fin))
    y = lin.astype(np.float64).forward(x, True)
    np.testing.assert_allclose(y, x @ lin.params["weight"].T + lin.params.get("bias", 0.0))
    check_layer_grads(lin, x, rng)


# --------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------
pool_cases = st.fixed_dictionaries(
    {
        "n": st.integers(1, 3),
        "c": st.integers(1, 3),
        "h": st.integers(4, 8),
        "w": st.integers(4, 8),
        "k": st.integers(1, 3),
        "stride": st.sampled_from([None, 1, 2]),
        "padding": st.integers(0, 1),
        "channels_last": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


def _pool_input(case, rng):
    shape = (case["n"], case["c"], case["h"], case["w"])
    # distinct values spaced by 1/size >> eps: no ties, so finite differences are valid
    size = int(np.prod(shape))
    x = rng.permutation(size).reshape(shape) / size
    return channels_last(x) if case["channels_last"] else x


def _pool_padding(case):
    return min(case["padding"], case["k"] // 2)


@FAST
@given(pool_cases)
def test_maxpool_forward_and_backward(case):
    rng = np.random.default_rng(case["seed"])
    p = _pool_padding(case)
    pool = MaxPool2d(case["k"], case["stride"], p)
    x = _pool_input(case, rng)
    y = pool.forward(x, True)
    s = case["k"] if case["stride"] is None else case["stride"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    ref = np.empty_like(y)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            win = xp[:, :, i * s : i * s + case["k"], j * s : j * s + case["k"]]
            ref[:, :, i, j] = win.max(axis=(2, 3))
    np.testing.assert_array_equal(y, ref)
    check_layer_grads(pool, x, rng)


@FAST
@given(pool_cases)
def test_avgpool_forward_and_backward(case):
    rng = np.random.default_rng(case["seed"])
    p = _pool_padding(case)
    pool = AvgPool2d(case["k"], case["stride"], p)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    if case["channels_last"]:
        x = channels_last(x)
    y = pool.forward(x, True)
    s = case["k"] if case["stride"] is None else case["stride"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            win = xp[:, :, i * s : i * s + case["k"], j * s : j * s + case["k"]]
            np.testing.assert_allclose(y[:, :, i, j], win.mean(axis=(2, 3)))
    check_layer_grads(pool, x, rng)


@pytest.mark.parametrize("stride", [2, 1])
def test_maxpool_ties_route_to_first_max(stride):
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    pool = MaxPool2d(2, stride)
    y = pool.forward(x, True)
    dx = pool.backward(np.ones_like(y))
    # every window's gradient goes to one element only (its first in row-major order)
    assert dx.sum() == y.size
    if stride == 2:
        expected = np.zeros((4, 4), dtype=np.float32)
        expected[::2, ::2] = 1
        np.testing.assert_array_equal(dx[0, 0], expected)


def test_maxpool_ties_among_later_window_elements():
    # window [[0, 1], [1, 1]]: the max first appears at (0, 1)
    x = np.array([[0.0, 1.0, 5.0, 5.0], [1.0, 1.0, 5.0, 4.0]]).reshape(1, 1, 2, 4)
    pool = MaxPool2d(2)
    y = pool.forward(x, True)
    np.testing.assert_array_equal(y.ravel(), [1.0, 5.0])
    dx = pool.backward(np.array([[[[2.0, 3.0]]]]))
    np.testing.assert_array_equal(dx[0, 0], [[0, 2, 3, 0], [0, 0, 0, 0]])
    pool = MaxPool2d((2, 3), stride=(1, 2), padding=(1, 1))
    check_layer_grads(pool, np.random.default_rng(0).permutation(30).reshape(1, 1, 5, 6) / 30,
                      np.random.default_rng(1))  # fmt: skip


def test_pool_output_size_floor_rule():
    x = np.zeros((1, 1, 7, 7), dtype=np.float32)
    assert MaxPool2d(2).forward(x, True).shape == (1, 1, 3, 3)
    assert MaxPool2d(3, 2, 1).forward(np.zeros((1, 1, 32, 32)), True).shape == (1, 1, 16, 16)
    assert AvgPool2d(3, 2).forward(x, True).shape == (1, 1, 3, 3)


# --------------------------------------------------------------------------
# elementwise / shape layers
# --------------------------------------------------------------------------
@FAST
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), seed=st.integers(0, 2**16))
def test_relu_backward_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(shape)
    x = np.sign(u) * (0.1 + np.abs(u))  # keep away from the kink at 0
    relu = ReLU()
    np.testing.assert_array_equal(relu.forward(x, True), np.maximum(x, 0))
    check_layer_grads(relu, x, rng)


def test_flatten_roundtrip():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    f = Flatten()
    y = f.forward(channels_last(x), True)
    np.testing.assert_array_equal(y, x.reshape(2, -1))  # C-order (c, h, w) flattening
    assert f.backward(y).shape == x.shape


@FAST
@given(
    n=st.integers(1, 3),
    f=st.integers(1, 6),
    p=st.sampled_from([0.0, 0.3, 0.5, 0.9]),
    seed=st.integers(0, 2**16),
)
def test_dropout_fixed_mask_finite_differences(n, f, p, seed):
    rng = np.random.default_rng(seed)
    drop = Dropout(p, rng=np.random.default_rng(seed))

    def reseed() -> None:  # same mask for every forward
        drop.rng = np.random.default_rng(seed + 1)

    check_layer_grads(drop, rng.standard_normal((n, f)), rng, before_forward=reseed)


def test_dropout_inverted_scaling_and_eval():
    x = np.ones((200, 50), dtype=np.float32)
    drop = Dropout(0.5, rng=np.random.default_rng(0))
    y = drop.forward(x, training=True)
    assert y.dtype == np.float32
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert abs(y.mean() - 1.0) < 0.05
    np.testing.assert_array_equal(drop.backward(x), y)  # same mask
    np.testing.assert_array_equal(drop.forward(x, training=False), x)
    y1 = Dropout(0.5, rng=np.random.default_rng(7)).forward(x, True)
    y2 = Dropout(0.5, rng=np.random.default_rng(7)).forward(x, True)
    np.testing.assert_array_equal(y1, y2)


# --------------------------------------------------------------------------
# batch norm
# --------------------------------------------------------------------------
@FAST
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    h=st.integers(4, 6),
    w=st.integers(4, 6),
    training=st.booleans(),
    channels_last_=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_batchnorm2d_backward_finite_differences(n, c, h, w, training, channels_last_, seed):
    rng = np.random.default_rng(seed)
    bn = BatchNorm2d(c)
    bn.params["gamma"][...] = rng.uniform(0.5, 2.0, c)
    bn.params["beta"][...] = rng.standard_normal(c)
    bn.buffers["running_mean"][...] = rng.standard_normal(c)
    bn.buffers["running_var"][...] = rng.uniform(0.5, 2.0, c)
    x = rng.standard_normal((n, c, h, w)) * 3 + 1
    if channels_last_:
        x = channels_last(x)
    check_layer_grads(bn, x, rng, training=training)


@FAST
@given(
    n=st.integers(2, 4), f=st.integers(1, 5), training=st.booleans(), seed=st.integers(0, 2**16)
)
def test_batchnorm1d_backward_finite_differences(n, f, training, seed):
    rng = np.random.default_rng(seed)
    bn = BatchNorm1d(f)
    bn.params["gamma"][...] = rng.uniform(0.5, 2.0, f)
    bn.params["beta"][...] = rng.standard_normal(f)
    check_layer_grads(bn, rng.standard_normal((n, f)) * 2 - 1, rng, training=training)


def test_batchnorm_statistics_and_running_averages():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 3, 5, 5)) * 2 + 4).astype(np.float32)
    bn = BatchNorm2d(3, momentum=0.1)
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)
    mu = x.mean(axis=(0, 2, 3))
    var_unbiased = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * mu, rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * var_unbiased, rtol=1e-5)
    # eval mode uses the running statistics
    y_eval = bn.forward(x, training=False)
    rm, rv = bn.buffers["running_mean"], bn.buffers["running_var"]
    expected = (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + bn.eps)
    np.testing.assert_allclose(y_eval, expected, rtol=1e-5, atol=1e-5)
    assert y.dtype == y_eval.dtype == np.float32


def test_batchnorm1d_training_needs_two_samples():
    with pytest.raises(ValueError):
        BatchNorm1d(3).forward(np.ones((1, 3), dtype=np.float32), training=True)


# --------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------
@FAST
@given(n=st.integers(1, 4), k=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_softmax_cross_entropy_value_and_gradient(n, k, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k)) * 3
    y = rng.integers(0, k, n)
    loss, grad = softmax_cross_entropy(z, y)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss, -np.mean(np.log(p[np.arange(n), y])))
    num = numerical_grad(lambda: softmax_cross_entropy(z, y)[0], z)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(softmax(z), p)
    np.testing.assert_allclose(log_softmax(z), np.log(p))


def test_softmax_cross_entropy_is_stable_and_keeps_dtype():
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32)
    loss, grad = softmax_cross_entropy(z, np.array([0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # row 1: -log p = 0; row 2: 2e4 + log 2 (two logits tie at the max)
    np.testing.assert_allclose(loss, (2e4 + np.log(2)) / 2, rtol=1e-6)
    assert grad.dtype == np.float32
    assert accuracy(z, np.array([0, 1])) == 1.0  # ties: first index
    with pytest.raises(TypeError):
        softmax_cross_entropy(z, np.array([0.0, 1.0]))


# --------------------------------------------------------------------------
# straight-through estimator hook
# --------------------------------------------------------------------------
def _ste_pair(kind: str, rng: np.random.Generator):
    if kind == "conv":
        q = Conv2d(2, 3, 3, 2, 1, rng=rng)
        ref = Conv2d(2, 3, 3, 2, 1, rng=rng)
        x = rng.standard_normal((2, 2, 6, 5)).astype(np.float32)
    else:
        q = Linear(5, 4, rng=rng)
        ref = Linear(5, 4, rng=rng)
        x = rng.standard_normal((3, 5)).astype(np.float32)
    q.params["bias"][...] = rng.standard_normal(q.params["bias"].shape)
    return q, ref, x


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_ste_hook_uses_quantized_weight_and_passes_gradient_through(kind):
    rng = np.random.default_rng(3)
    layer, ref, x = _ste_pair(kind, rng)
    w_f = layer.params["weight"].copy()
    calls = []

    def sign(w: np.ndarray) -> np.ndarray:
        calls.append(w)
        return np.sign(w)

    layer.weight_quantizer = sign  # settable after construction
    np.testing.assert_array_equal(layer.effective_weight(), np.sign(w_f))
    # reference layer that *has* the quantised weight as its parameter
    ref.params["weight"][...] = np.sign(w_f)
    ref.params["bias"][...] = layer.params["bias"]
    y, y_ref = layer.forward(x, True), ref.forward(x, True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6)
    assert calls[-1] is layer.params["weight"]  # the quantizer sees the shadow weight
    g = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    dx, dx_ref = layer.backward(g), ref.backward(g)
    # grad of w_f := grad w.r.t. w_q (straight-through); dx uses w_q
    np.testing.assert_allclose(layer.grads["weight"], ref.grads["weight"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.grads["bias"], ref.grads["bias"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.params["weight"], w_f)  # shadow weight untouched
    layer.weight_quantizer = None
    np.testing.assert_array_equal(layer.effective_weight(), w_f)


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_ste_gradient_is_gradient_wrt_quantized_weight(kind):
    """Finite differences in w_q (the weight actually used) match grads['weight']."""
    rng = np.random.default_rng(5)
    layer, _, x = _ste_pair(kind, rng)
    layer.astype(np.float64)
    x = x.astype(np.float64)
    w_q = np.round(layer.params["weight"] * 4) / 4  # a fixed "quantised" weight
    layer.weight_quantizer = lambda w: w_q
    layer.bias_quantizer = lambda b: np.round(b)
    r = rng.standard_normal(layer.forward(x, True).shape)
    layer.backward(r)

    def loss() -> float:
        return float(np.sum(layer.forward(x, True) * r))

    np.testing.assert_allclose(layer.grads["weight"], numerical_grad(loss, w_q), rtol=1e-6)
    np.testing.assert_array_equal(layer.effective_bias(), np.round(layer.params["bias"]))


def test_quantizer_shape_and_dtype_contract():
    rng = np.random.default_rng(0)
    lin = Linear(3, 2, rng=rng, weight_quantizer=lambda w: w.astype(np.float64) * 2)
    assert lin.effective_weight().dtype == np.float32  # cast back to the parameter dtype
    lin.weight_quantizer = lambda w: w[:1]
    with pytest.raises(ValueError):
        lin.forward(np.ones((1, 3), dtype=np.float32), True)


# --------------------------------------------------------------------------
# dtype handling and bookkeeping
# --------------------------------------------------------------------------
def _all_layers(rng):
    return [
        (Conv2d(2, 3, 3, padding=1, rng=rng), (2, 2, 6, 6)),
        (Linear(4, 3, rng=rng), (2, 4)),
        (MaxPool2d(2), (2, 2, 6, 6)),
        (MaxPool2d(3, 2, 1), (2, 2, 6, 6)),
        (AvgPool2d(2), (2, 2, 6, 6)),
        (AvgPool2d(3, 2, 1), (2, 2, 6, 6)),
        (ReLU(), (2, 3)),
        (BatchNorm2d(2), (2, 2, 4, 4)),
        (BatchNorm1d(3), (4, 3)),
        (Dropout(0.5, rng=rng), (2, 3)),
        (Flatten(), (2, 2, 3, 3)),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_keep_dtype(dtype):
    rng = np.random.default_rng(0)
    for layer, shape in _all_layers(rng):
        layer.astype(dtype)
        x = rng.standard_normal(shape).astype(dtype)
        y = layer.forward(x, True)
        dx = layer.backward(np.ones_like(y))
        assert y.dtype == dtype and dx.dtype == dtype, layer
        for k in layer.params:
            assert layer.params[k].dtype == layer.grads[k].dtype == dtype
        assert dx.shape == x.shape


def test_grad_arrays_are_updated_in_place():
    rng = np.random.default_rng(0)
    conv = Conv2d(1, 2, 3, rng=rng)
    ids = {k: id(v) for k, v in conv.grads.items()}
    pids = {k: id(v) for k, v in conv.params.items()}
    for _ in range(2):
        y = conv.forward(rng.standard_normal((1, 1, 5, 5)).astype(np.float32), True)
        conv.backward(np.ones_like(y))
    assert ids == {k: id(v) for k, v in conv.grads.items()}
    assert pids == {k: id(v) for k, v in conv.params.items()}
    assert not np.all(conv.grads["weight"] == 0)
