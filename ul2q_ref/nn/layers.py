"""From-scratch NumPy layers with explicit forward and backward passes.

Every layer follows the same small protocol (see :class:`Layer`)::

    y  = layer.forward(x, training)    # caches what backward needs
    dx = layer.backward(dy)            # dL/dx from dL/dy, fills layer.grads

``training`` switches BatchNorm (batch vs running statistics) and Dropout.
``backward(dy, need_input_grad=False)`` lets a layer skip ``dL/dx`` (returns
``None`` for Conv2d/Linear/BatchNorm); :class:`~ul2q_ref.nn.models.Sequential`
uses it for the first layer, whose input is the data.

* ``layer.params``  -- ``dict[str, ndarray]`` of trainable arrays
  (``"weight"``/``"bias"`` for Conv2d/Linear, ``"gamma"``/``"beta"`` for BatchNorm).
* ``layer.grads``   -- same keys, same shapes.  ``backward`` *overwrites* them
  (no accumulation, so no ``zero_grad`` is needed; one backward per forward).
* ``layer.buffers`` -- non-trainable state that belongs in a checkpoint
  (BatchNorm ``"running_mean"``/``"running_var"``).

The arrays in these dicts are created once and afterwards only updated in
place, so an optimizer may keep references to them.  Nothing inside a layer
casts: parameters are created as ``float32`` and the output dtype follows
NumPy's promotion of input and parameter dtypes, so ``layer.astype(np.float64)``
plus float64 inputs gives a float64 layer (used for finite-difference tests).

Layout conventions (as in Caffe and PyTorch): images are ``NCHW``; a Conv2d
weight is ``(out_channels, in_channels, kh, kw)``; a Linear weight is
``(out_features, in_features)`` and computes ``y = x W^T + b``.  For speed,
Conv2d and the pools return NCHW *views* of channels-last (NHWC) memory --
logically the same arrays, so callers never need to care; use
``np.ascontiguousarray`` if you need C-ordered NCHW memory.

Quantisation-aware training hook (straight-through estimator)
-------------------------------------------------------------
:class:`Conv2d` and :class:`Linear` accept ``weight_quantizer`` and
``bias_quantizer``: callables mapping the full-precision *shadow* array
``w_f`` (``params["weight"]``) to a quantised array ``w_q`` of the same shape
(and dtype; it is cast if not).  They can be (re)assigned at any time as
attributes.  In ``forward`` the layer computes ``w_q = weight_quantizer(w_f)``
(or uses ``w_f`` when the quantizer is ``None``), uses ``w_q`` in the
convolution / matrix product and caches it.  In ``backward`` the gradient is
taken with respect to ``w_q`` and stored in ``grads["weight"]``, i.e. the
straight-through estimator ``dL/dw_f := dL/dw_q``, so the optimizer updates
the shadow weight.  The quantizer is called once per forward (and by each
``effective_weight()`` call) and must not modify its argument in place.
``layer.effective_weight()`` / ``effective_bias()`` return what the next
forward will use (e.g. to export the quantised model).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .init import get_initializer
from .lowering import (
    col2im_gemm,
    conv_output_size,
    crop_to_nchw,
    im2col,
    kernel_offsets,
    pad_nhwc,
)

Quantizer = Callable[[np.ndarray], np.ndarray]

__all__ = [
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Layer",
    "Linear",
    "MaxPool2d",
    "Quantizer",
    "ReLU",
    "col2im_gemm",
    "conv_output_size",
    "im2col",
]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, tuple):
        if len(v) != 2:
            raise ValueError(f"expected an int or a pair, got {v}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _sum_rows(g: np.ndarray) -> np.ndarray:
    """``g.sum(axis=0)`` for a tall 2-D ``g``, as a GEMV ``1^T g`` (several times faster)."""
    return np.ones(g.shape[0], dtype=g.dtype) @ g


def _matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = a @ b`` without a temporary when the dtypes allow it."""
    if out.flags.c_contiguous and np.result_type(a, b) == out.dtype:
        np.matmul(a, b, out=out)
    else:
        out[...] = a @ b


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------
class Layer:
    """Base class: holds ``params``, ``grads`` and ``buffers`` dicts.

    Subclasses implement ``forward(x, training)`` and ``backward(grad_out)``.
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Return ``dL/dx`` and fill ``self.grads``.

        With ``need_input_grad=False`` a layer may skip ``dL/dx`` and return
        ``None`` (used for the first layer, whose input is the data).
        """
        raise NotImplementedError

    def __call__(self, x: np.ndarray, training: bool) -> np.ndarray:
        return self.forward(x, training)

    def _add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def astype(self, dtype: np.dtype | type) -> Layer:
        """Convert parameters, gradients and buffers to ``dtype`` (in place); return self."""
        for d in (self.params, self.grads, self.buffers):
            for k in d:
                d[k] = d[k].astype(dtype)
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _apply_quantizer(q: Quantizer | None, w: np.ndarray) -> np.ndarray:
    """Return ``q(w)`` checked to have ``w``'s shape and cast to its dtype (or ``w``)."""
    if q is None:
        return w
    wq = np.asarray(q(w))
    if wq.shape != w.shape:
        raise ValueError(f"quantizer changed the shape {w.shape} -> {wq.shape}")
    if wq.dtype != w.dtype:
        wq = wq.astype(w.dtype)
    return wq


class _QuantizableLayer(Layer):
    """Shared STE plumbing of :class:`Conv2d` and :class:`Linear`."""

    weight_quantizer: Quantizer | None
    bias_quantizer: Quantizer | None

    def _init_quantizable(
        self,
        weight_shape: tuple[int, ...],
        bias: bool,
        *,
        rng: np.random.Generator,
        init: str,
        weight_quantizer: Quantizer | None,
        bias_quantizer: Quantizer | None,
        dtype: np.dtype | type,
    ) -> None:
        """Create the shadow weight ``w_f`` (drawn by ``init``), a zero bias and the quantizers.

        ``w_f`` has ``weight_shape`` (output units first); the bias, when ``bias``
        is true, has one zero per output unit.  The quantizers map the shadow
        parameters to the ``w_q`` / ``b_q`` the forward pass uses (``None``: float).
        """
        self.init = init
        self._add_param("weight", get_initializer(init)(weight_shape, rng, dtype=dtype))
        if bias:
            self._add_param("bias", np.zeros(weight_shape[0], dtype=dtype))
        self.weight_quantizer = weight_quantizer
        self.bias_quantizer = bias_quantizer
        self._cache: tuple | None = None

    def _weights_for_forward(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.effective_weight(), self.effective_bias()

    def effective_weight(self) -> np.ndarray:
        """The weight the next forward uses: ``weight_quantizer(w_f)`` or ``w_f``."""
        return _apply_quantizer(self.weight_quantizer, self.params["weight"])

    def effective_bias(self) -> np.ndarray | None:
        """The bias the next forward uses (``None`` for a layer without bias)."""
        if "bias" not in self.params:
            return None
        return _apply_quantizer(self.bias_quantizer, self.params["bias"])

    @property
    def has_bias(self) -> bool:
        return "bias" in self.params


# --------------------------------------------------------------------------
# convolution (the lowering to GEMM is in lowering.py)
# --------------------------------------------------------------------------
class Conv2d(_QuantizableLayer):
    """2-D convolution (cross-correlation, as in Caffe/PyTorch), NCHW.

    ``y[n, o, i, j] = b[o] + sum_{c,u,v} W_q[o, c, u, v] * x_pad[n, c, s*i+u, s*j+v]``

    with ``W_q = weight_quantizer(W)`` (STE, see module docstring).
    Implemented as im2col + one GEMM, ``Y = cols @ W2^T`` with
    ``W2 = W_q.transpose(0, 2, 3, 1).reshape(O, -1)`` (see :func:`im2col`).
    Backward (``G`` = ``dL/dY`` as an ``(N*Ho*Wo, O)`` matrix)::

        dL/dW2 = G^T @ cols           (one GEMM, stored as the grad of W)
        dL/db  = sum of G over rows
        dL/dx  = col2im(G @ W2)       (fused: one small GEMM per kernel offset)

    Memory layout: the output is an NCHW *view* of the channels-last GEMM
    result, so no transpose copy is made; :func:`im2col` and the pooling
    layers are fastest on exactly such arrays.  Any NCHW array works as input.
    ``backward(g, need_input_grad=False)`` skips ``dL/dx`` (first layer).

    Parameters
    ----------
    in_channels, out_channels, kernel_size
        Shapes; ``kernel_size`` is an int or ``(kh, kw)``.
    stride, padding
        Int or pair; zero padding on both sides.
    bias
        Whether the layer has a bias (initialised to 0).
    rng
        Generator for the weight initialisation.
    init
        ``"xavier"`` (Caffe xavier, fan-in), ``"he"`` or ``"he_uniform"``
        (see :mod:`ul2q_ref.nn.init`).
    weight_quantizer, bias_quantizer
        Optional ``w_f -> w_q`` callables (can also be set later as attributes).
    dtype
        Parameter dtype, ``float32`` by default.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        *,
        rng: np.random.Generator,
        init: str = "xavier",
        weight_quantizer: Quantizer | None = None,
        bias_quantizer: Quantizer | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self._init_quantizable(
            (self.out_channels, self.in_channels, *self.kernel_size),
            bias,
            rng=rng,
            init=init,
            weight_quantizer=weight_quantizer,
            bias_quantizer=bias_quantizer,
            dtype=dtype,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.has_bias}"
        )

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (N, {self.in_channels}, H, W) input, got {x.shape}")
        n = x.shape[0]
        o = self.out_channels
        wq, bq = self._weights_for_forward()  # w_q (O, C, kh, kw), b_q
        cols, ho, wo = im2col(x, self.kernel_size, self.stride, self.padding)
        w2 = wq.transpose(0, 2, 3, 1).reshape(o, -1)  # (O, kh*kw*C), im2col's column order
        y = cols @ w2.T  # (N*Ho*Wo, O)  -- the one GEMM
        if bq is not None:
            y += bq
        self._cache = (x.shape, cols, w2)
        # (N*Ho*Wo, O) is channels-last memory; return it as an NCHW view (no copy).
        return y.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        x_shape, cols, w2 = self._cache
        o = self.out_channels
        kh, kw = self.kernel_size
        # (N, O, Ho, Wo) -> (N*Ho*Wo, O); free when grad_out is a channels-last view.
        g = grad_out.transpose(0, 2, 3, 1).reshape(-1, o)
        dw2 = g.T @ cols  # (O, kh*kw*C)  -- one GEMM
        self.grads["weight"][...] = dw2.reshape(o, kh, kw, -1).transpose(0, 3, 1, 2)
        if "bias" in self.grads:
            self.grads["bias"][...] = _sum_rows(g)
        if not need_input_grad:
            return None
        # dL/dx = col2im(G @ W2), fused so the big product is never stored
        return col2im_gemm(g, w2, x_shape, self.kernel_size, self.stride, self.padding)


# --------------------------------------------------------------------------
# fully connected
# --------------------------------------------------------------------------
class Linear(_QuantizableLayer):
    """Fully connected layer ``y = x W_q^T + b_q`` for ``x`` of shape ``(N, in_features)``.

    Backward: ``dL/dW = G^T x``, ``dL/db = sum_n G``, ``dL/dx = G W_q`` with
    ``G = dL/dy``; ``dL/dW`` is stored as the gradient of the shadow weight (STE).
    Constructor arguments as for :class:`Conv2d`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator,
        init: str = "xavier",
        weight_quantizer: Quantizer | None = None,
        bias_quantizer: Quantizer | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self._init_quantizable(
            (self.out_features, self.in_features),
            bias,
            rng=rng,
            init=init,
            weight_quantizer=weight_quantizer,
            bias_quantizer=bias_quantizer,
            dtype=dtype,
        )

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.has_bias}"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected (N, {self.in_features}) input, got {x.shape}")
        wq, bq = self._weights_for_forward()  # w_q, b_q
        y = x @ wq.T
        if bq is not None:
            y += bq
        self._cache = (x, wq)
        return y

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        x, wq = self._cache
        _matmul_into(grad_out.T, x, self.grads["weight"])
        if "bias" in self.grads:
            self.grads["bias"][...] = _sum_rows(grad_out)
        if not need_input_grad:
            return None
        return grad_out @ wq


# --------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------
class _Pool2d(Layer):
    """Shared machinery of the pooling layers.

    A ``kh x kw`` window with stride ``s`` is handled as ``kh*kw`` strided
    *slabs*: slab ``(u, v)`` is the ``(N, Ho, Wo, C)`` view
    ``x_pad[:, u + s*i, v + s*j, :]`` (channels-last), i.e. element ``(u, v)``
    of every window at once.  Pooling then is an element-wise reduction over
    the slabs -- no Python loop over pixels, no gather copy -- and backward
    adds into the same strided slabs.  In the common non-overlapping case
    (stride >= kernel) the slabs are disjoint, so backward writes them
    directly instead of accumulating.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = _pair(padding)
        kh, kw = self.kernel_size
        if self.padding[0] * 2 > kh or self.padding[1] * 2 > kw:
            raise ValueError("padding must be at most half the kernel size")
        self._cache: tuple | None = None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    @property
    def overlapping(self) -> bool:
        return self.stride[0] < self.kernel_size[0] or self.stride[1] < self.kernel_size[1]

    def _slabs(
        self, x: np.ndarray, pad_value: float
    ) -> tuple[list[tuple[slice, slice]], list[np.ndarray], int, int]:
        """Window slices and channels-last slab views of the padded ``x`` (N, C, H, W)."""
        _, _, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho = conv_output_size(h, kh, sh, ph)
        wo = conv_output_size(w, kw, sw, pw)
        xp = pad_nhwc(x.transpose(0, 2, 3, 1), ph, pw, pad_value)
        offs = kernel_offsets(self.kernel_size, self.stride, ho, wo)
        slices = [(si, sj) for _, _, si, sj in offs]
        return slices, [xp[:, si, sj, :] for si, sj in slices], ho, wo

    def _grad_buffer(self, x_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        n, c, h, w = x_shape
        ph, pw = self.padding
        return np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=dtype)


class MaxPool2d(_Pool2d):
    """Max pooling over ``kh x kw`` windows with the given stride (default = kernel).

    ``y[n, c, i, j] = max_{u,v} x_pad[n, c, s*i+u, s*j+v]``, computed as a
    running ``np.maximum`` over the ``kh*kw`` slabs (see :class:`_Pool2d`).
    Backward routes each output gradient to the *first* (row-major window
    order) position holding the maximum, like Caffe and PyTorch; ties get no
    duplicated gradient.  Output size uses the floor rule
    ``(H + 2p - k) // s + 1`` (PyTorch; Caffe rounds up).  Padding is ``-inf``.

    Fast path: when the windows tile the input exactly (stride == kernel, no
    padding, divisible size -- LeNet's 2x2/2 pools) backward works on the
    reshaped ``(N, Ho, kh, Wo, kw, C)`` view with broadcasting.
    """

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        _, slabs, _, _ = self._slabs(x, -np.inf)
        y = slabs[0].copy()
        for a in slabs[1:]:
            np.maximum(y, a, out=y)
        self._cache = (x, y)
        return y.transpose(0, 3, 1, 2)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        x, y = self._cache
        g = grad_out.transpose(0, 2, 3, 1)  # (N, Ho, Wo, C) view
        if self._tiles_exactly(x.shape):
            return self._backward_tiled(x, y, g)
        slices, slabs, _, _ = self._slabs(x, -np.inf)
        dxp = self._grad_buffer(x.shape, grad_out.dtype)
        free = None  # windows whose argmax is still to be found (None: all of them)
        for t, ((si, sj), a) in enumerate(zip(slices, slabs, strict=True)):
            hit = a == y
            if free is None:
                free = ~hit
            else:
                hit &= free  # only the first maximum of a window gets the gradient
                if t < len(slabs) - 1:
                    free ^= hit
            if self.overlapping:
                dxp[:, si, sj, :] += g * hit
            else:
                np.multiply(g, hit, out=dxp[:, si, sj, :])
        return crop_to_nchw(dxp, x.shape, self.padding)

    def _tiles_exactly(self, x_shape: tuple[int, ...]) -> bool:
        """Windows are disjoint, unpadded and cover the whole input."""
        _, _, h, w = x_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return (
            (sh, sw) == (kh, kw) and self.padding == (0, 0) and h % kh == 0 and w % kw == 0
        )

    def _backward_tiled(self, x: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Reshape-based fast path: windows are the axes 2 and 4 of an (N, Ho, kh, Wo, kw, C) view.

        ``hit`` marks every maximum in one broadcast comparison; a loop over the
        ``kh*kw`` window positions (on booleans) keeps only the first one; one
        broadcast product then writes the whole gradient.
        """
        n, c, h, w = x.shape
        kh, kw = self.kernel_size
        ho, wo = h // kh, w // kw
        xr = x.transpose(0, 2, 3, 1).reshape(n, ho, kh, wo, kw, c)  # a view for NHWC memory
        hit = xr == y[:, :, None, :, None, :]
        free = ~hit[:, :, 0, :, 0, :]
        for t in range(1, kh * kw):
            h_t = hit[:, :, t // kw, :, t % kw, :]  # view into hit
            h_t &= free
            free ^= h_t
        dx = hit * g[:, :, None, :, None, :]
        return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)


class AvgPool2d(_Pool2d):
    """Average pooling: ``y[n, c, i, j] = mean_{u,v} x_pad[n, c, s*i+u, s*j+v]``.

    Zero padding is counted in the mean (divisor always ``kh*kw``, like
    PyTorch's ``count_include_pad=True``).  Output size uses the floor rule.
    Backward spreads ``dy / (kh*kw)`` uniformly over each window.
    """

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        _, slabs, _, _ = self._slabs(x, 0.0)
        y = slabs[0].copy()
        for a in slabs[1:]:
            y += a
        y *= 1.0 / (self.kernel_size[0] * self.kernel_size[1])
        self._cache = (x.shape,)
        return y.transpose(0, 3, 1, 2)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        (x_shape,) = self._cache
        kh, kw = self.kernel_size
        ho, wo = grad_out.shape[2:]
        g = grad_out.transpose(0, 2, 3, 1) * (1.0 / (kh * kw))
        dxp = self._grad_buffer(x_shape, g.dtype)
        for _, _, si, sj in kernel_offsets(self.kernel_size, self.stride, ho, wo):
            if self.overlapping:
                dxp[:, si, sj, :] += g
            else:
                dxp[:, si, sj, :] = g
        return crop_to_nchw(dxp, x_shape, self.padding)


# --------------------------------------------------------------------------
# element-wise and shape layers
# --------------------------------------------------------------------------
class ReLU(Layer):
    """``y = max(x, 0)``; backward ``dx = dy * [x > 0]``."""

    def __init__(self) -> None:
        super().__init__()
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._mask = x > 0
        return np.maximum(x, 0)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        if self._mask is None:
            raise RuntimeError("backward called before forward")
        return grad_out * self._mask  # keeps grad_out's memory layout


class Flatten(Layer):
    """Reshape ``(N, ...)`` to ``(N, prod(...))`` (C-order, i.e. Caffe/PyTorch order)."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        if self._shape is None:
            raise RuntimeError("backward called before forward")
        return grad_out.reshape(self._shape)


class Dropout(Layer):
    """Inverted dropout with drop probability ``p``.

    Training: ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` drawn from
    ``self.rng`` (a ``numpy.random.Generator``; reseed or replace it to
    reproduce a mask).  Evaluation: ``y = x``.  Backward multiplies by the
    same scaled mask, kept in ``self.mask``.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng
        self.mask: np.ndarray | None = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if not training or self.p == 0.0:
            self.mask = None
            return x
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        keep = self.rng.random(x.shape, dtype=dtype) >= self.p
        self.mask = keep.astype(dtype) * dtype.type(1.0 / (1.0 - self.p))
        return x * self.mask

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        if self.mask is None:
            return grad_out
        return grad_out * self.mask


# --------------------------------------------------------------------------
# batch normalisation
# --------------------------------------------------------------------------
class _BatchNorm(Layer):
    """Batch normalisation, statistics per feature/channel.

    Training mode, with ``m`` = number of values per feature in the batch::

        mu    = mean(x),  var = mean((x - mu)^2)        (biased, used to normalise)
        x_hat = (x - mu) / sqrt(var + eps)
        y     = gamma * x_hat + beta
        running_mean <- (1 - momentum) * running_mean + momentum * mu
        running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)

    i.e. the **PyTorch** convention (``momentum=0.1`` weights the new batch;
    unbiased variance in the running estimate).  Caffe's BatchNorm layer instead
    keeps decayed *sums* with ``moving_average_fraction=0.999``; we do not
    follow that.  Evaluation mode normalises with the running statistics.

    Backward (training mode), sums over the ``m`` values of a feature::

        dbeta  = sum(dy),   dgamma = sum(dy * x_hat)
        dx     = gamma / sqrt(var + eps) * (dy - dbeta / m - x_hat * dgamma / m)
    """

    _axes: tuple[int, ...]
    _expected_ndim: int

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        *,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self._add_param("gamma", np.ones(num_features, dtype=dtype))
        self._add_param("beta", np.zeros(num_features, dtype=dtype))
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=dtype)
        self._cache: tuple | None = None

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def _bshape(self) -> tuple[int, ...]:
        shape = [1] * self._expected_ndim
        shape[1] = self.num_features
        return tuple(shape)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if x.ndim != self._expected_ndim or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got input {x.shape}")
        bs = self._bshape()
        gamma = self.params["gamma"].reshape(bs)
        beta = self.params["beta"].reshape(bs)
        if training:
            m = x.size // self.num_features
            if m < 2:
                raise ValueError("batch norm in training mode needs > 1 value per channel")
            mu = x.mean(axis=self._axes, keepdims=True)
            xc = x - mu
            var = np.mean(xc * xc, axis=self._axes, keepdims=True)
            inv_std = 1.0 / np.sqrt(var + self.eps)
            mom = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= 1.0 - mom
            rm += mom * mu.reshape(-1)
            rv *= 1.0 - mom
            rv += (mom * m / (m - 1)) * var.reshape(-1)
        else:
            m = None
            mu = self.buffers["running_mean"].reshape(bs)
            xc = x - mu
            inv_std = 1.0 / np.sqrt(self.buffers["running_var"].reshape(bs) + self.eps)
        x_hat = xc * inv_std
        self._cache = (training, x_hat, inv_std, m)
        return x_hat * gamma + beta

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        training, x_hat, inv_std, m = self._cache
        bs = self._bshape()
        dbeta = grad_out.sum(axis=self._axes)
        dgamma = np.sum(grad_out * x_hat, axis=self._axes)
        self.grads["beta"][...] = dbeta
        self.grads["gamma"][...] = dgamma
        if not need_input_grad:
            return None
        scale = self.params["gamma"].reshape(bs) * inv_std
        if not training:
            return grad_out * scale
        dx = grad_out - dbeta.reshape(bs) / m
        dx -= x_hat * (dgamma.reshape(bs) / m)
        dx *= scale
        return dx


class BatchNorm2d(_BatchNorm):
    """Batch norm for ``(N, C, H, W)`` input; statistics per channel over ``N, H, W``."""

    _axes = (0, 2, 3)
    _expected_ndim = 4


class BatchNorm1d(_BatchNorm):
    """Batch norm for ``(N, F)`` input; statistics per feature over ``N``."""

    _axes = (0,)
    _expected_ndim = 2
