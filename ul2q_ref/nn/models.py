"""``Sequential`` container and the model registry (LeNet-5, LeNet-5-BN, CifarNet).

Sequential
----------
A list of named layers run in order.  Names are qualified as
``"<layer name>.<param name>"`` (e.g. ``"conv1.weight"``, ``"bn1.running_mean"``)
and every iteration order below is the layer order, then the insertion order
of the layer's dicts, so it is deterministic.

* ``model.forward(x, training=None)`` -- ``training`` defaults to ``model.training``
  (set by ``model.train()`` / ``model.eval()``).
* ``model.backward(dL/dlogits, need_input_grad=True) -> dL/dx`` -- fills every
  layer's ``grads``; trainers pass ``need_input_grad=False`` (faster, returns None).
* ``model.parameters()`` -- yields ``(name, param, grad)`` triples (live arrays).
* ``model.state_dict()`` / ``model.load_state_dict(sd)`` -- flat
  ``name -> ndarray`` copies of all parameters *and* buffers (BN running stats).
* ``model.quantizable_layers()`` -- ``[(name, layer), ...]`` of the Conv2d and
  Linear layers in forward order; set ``layer.weight_quantizer`` on them.

Registry
--------
``build_model(name, rng, in_channels=..., num_classes=..., input_size=...)``
with ``name`` in :data:`MODEL_NAMES`:

``lenet5``
    Caffe ``lenet_train_test.prototxt``: conv1 20@5x5, max-pool 2/2, conv2
    50@5x5, max-pool 2/2, fc1 500, ReLU, fc2 10 (no ReLU after the convs, as in
    Caffe).  431,080 parameters on 1x28x28 input.
``lenet5-bn``
    conv 32@5x5 + BN + ReLU + max-pool 2/2, conv 64@5x5 + BN + ReLU + max-pool
    2/2, fc 512 + BN + ReLU + dropout 0.5, fc 10.  Conv/fc layers followed by BN
    have no bias (BN's ``beta`` plays that role).
``cifarnet``
    Caffe ``cifar10_full``-like for 3x32x32: conv1 32@5x5 pad 2, max-pool,
    ReLU, conv2 32@5x5 pad 2, ReLU, avg-pool, conv3 64@5x5 pad 2, ReLU,
    avg-pool, fc 10.  Pools are **2x2 stride 2** by default: with our floor
    rounding this gives the same 16/8/4 feature maps and the same 89,578
    parameters as Caffe's ceil-rounded 3x3 stride-2 pools.  ``overlapping_pool=True``
    uses 3x3 stride 2 padding 1 pools instead (also 16/8/4).

Initialisation: ``init="xavier"`` (Caffe xavier filler, fan-in) for all
weights by default, ``"he"`` available; biases 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np

from .layers import (
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
    conv_output_size,
)

__all__ = ["MODEL_NAMES", "Sequential", "build_model"]


class Sequential:
    """An ordered list of named layers; see the module docstring for the API."""

    def __init__(self, layers: Iterable[Layer | tuple[str, Layer]]) -> None:
        self.layers: list[tuple[str, Layer]] = []
        for i, item in enumerate(layers):
            name, layer = item if isinstance(item, tuple) else (str(i), item)
            if "." in name:
                raise ValueError(f"layer name {name!r} must not contain '.'")
            if any(name == n for n, _ in self.layers):
                raise ValueError(f"duplicate layer name {name!r}")
            self.layers.append((name, layer))
        self.training = True

    # ----- modes ---------------------------------------------------------
    def train(self, mode: bool = True) -> Sequential:
        """Set training mode (BatchNorm batch statistics, dropout active); return self."""
        self.training = bool(mode)
        return self

    def eval(self) -> Sequential:
        """Set evaluation mode (running statistics, no dropout); return self."""
        return self.train(False)

    # ----- computation -----------------------------------------------------
    def forward(self, x: np.ndarray, training: bool | None = None) -> np.ndarray:
        """Run all layers; ``training=None`` means ``self.training``."""
        mode = self.training if training is None else bool(training)
        for _, layer in self.layers:
            x = layer.forward(x, mode)
        return x

    __call__ = forward

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate ``dL/d(output)``; fills all ``grads`` and returns ``dL/dx``.

        A trainer should pass ``need_input_grad=False``: the gradient with
        respect to the data is then not computed (saves the first layer's
        col2im_gemm) and ``None`` is returned.
        """
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i][1]
            if i == 0 and not need_input_grad:
                layer.backward(grad_out, need_input_grad=False)
                return None
            grad_in = layer.backward(grad_out)
            assert grad_in is not None  # asked for (need_input_grad defaults to True)
            grad_out = grad_in
        return grad_out

    # ----- access ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[tuple[str, Layer]]:
        return iter(self.layers)

    def __getitem__(self, key: int | str) -> Layer:
        if isinstance(key, int):
            return self.layers[key][1]
        for name, layer in self.layers:
            if name == key:
                return layer
        raise KeyError(key)

    def __repr__(self) -> str:
        body = "\n".join(f"  ({name}): {layer!r}" for name, layer in self.layers)
        return f"Sequential(\n{body}\n)"

    def parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Yield ``(qualified_name, param, grad)`` in layer order (live arrays)."""
        for lname, layer in self.layers:
            for pname, p in layer.params.items():
                yield f"{lname}.{pname}", p, layer.grads[pname]

    def buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(qualified_name, buffer)`` (BatchNorm running statistics)."""
        for lname, layer in self.layers:
            for bname, b in layer.buffers.items():
                yield f"{lname}.{bname}", b

    def num_parameters(self) -> int:
        """Total number of trainable scalars (buffers excluded)."""
        return sum(p.size for _, p, _ in self.parameters())

    def quantizable_layers(self) -> list[tuple[str, Conv2d | Linear]]:
        """``[(name, layer)]`` for every Conv2d / Linear layer, in forward order."""
        return [(n, lay) for n, lay in self.layers if isinstance(lay, Conv2d | Linear)]

    def astype(self, dtype: np.dtype | type) -> Sequential:
        """Convert every layer's arrays to ``dtype``; return self."""
        for _, layer in self.layers:
            layer.astype(dtype)
        return self

    # ----- checkpoints ------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{name: copy}`` of all parameters, then all buffers (in layer order)."""
        sd: dict[str, np.ndarray] = {}
        for lname, layer in self.layers:
            for k, v in layer.params.items():
                sd[f"{lname}.{k}"] = v.copy()
            for k, v in layer.buffers.items():
                sd[f"{lname}.{k}"] = v.copy()
        return sd

    def load_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays from ``state`` into the model in place (dtype of the model kept).

        With ``strict`` the key sets must match exactly; shapes must always match.
        """
        targets: dict[str, np.ndarray] = {}
        for lname, layer in self.layers:
            for d in (layer.params, layer.buffers):
                for k, v in d.items():
                    targets[f"{lname}.{k}"] = v
        if strict and set(state) != set(targets):
            missing = sorted(set(targets) - set(state))
            unexpected = sorted(set(state) - set(targets))
            raise KeyError(f"state_dict mismatch: missing={missing} unexpected={unexpected}")
        for name, dst in targets.items():
            if name not in state:
                continue
            src = np.asarray(state[name])
            if src.shape != dst.shape:
                raise ValueError(f"{name}: shape {src.shape} != {dst.shape}")
            np.copyto(dst, src, casting="same_kind")


# --------------------------------------------------------------------------
# model registry
# --------------------------------------------------------------------------
def _spatial(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _lenet5(
    rng: np.random.Generator,
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    init: str,
) -> Sequential:
    h, w = input_size
    for _ in range(2):  # conv 5x5 valid, then pool 2/2
        h, w = conv_output_size(h, 5, 1, 0) // 2, conv_output_size(w, 5, 1, 0) // 2
    return Sequential(
        [
            ("conv1", Conv2d(in_channels, 20, 5, rng=rng, init=init)),
            ("pool1", MaxPool2d(2, 2)),
            ("conv2", Conv2d(20, 50, 5, rng=rng, init=init)),
            ("pool2", MaxPool2d(2, 2)),
            ("flatten", Flatten()),
            ("fc1", Linear(50 * h * w, 500, rng=rng, init=init)),
            ("relu1", ReLU()),
            ("fc2", Linear(500, num_classes, rng=rng, init=init)),
        ]
    )


def _lenet5_bn(
    rng: np.random.Generator,
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    init: str,
    dropout: float = 0.5,
) -> Sequential:
    h, w = input_size
    for _ in range(2):
        h, w = conv_output_size(h, 5, 1, 0) // 2, conv_output_size(w, 5, 1, 0) // 2
    conv1 = Conv2d(in_channels, 32, 5, bias=False, rng=rng, init=init)
    conv2 = Conv2d(32, 64, 5, bias=False, rng=rng, init=init)
    fc1 = Linear(64 * h * w, 512, bias=False, rng=rng, init=init)
    fc2 = Linear(512, num_classes, rng=rng, init=init)
    # The dropout stream is derived from rng *after* the weights, so adding the
    # dropout layer does not change the initial weights.
    drop_rng = np.random.default_rng(rng.integers(0, 2**63))
    return Sequential(
        [
            ("conv1", conv1),
            ("bn1", BatchNorm2d(32)),
            ("relu1", ReLU()),
            ("pool1", MaxPool2d(2, 2)),
            ("conv2", conv2),
            ("bn2", BatchNorm2d(64)),
            ("relu2", ReLU()),
            ("pool2", MaxPool2d(2, 2)),
            ("flatten", Flatten()),
            ("fc1", fc1),
            ("bn3", BatchNorm1d(512)),
            ("relu3", ReLU()),
            ("drop1", Dropout(dropout, rng=drop_rng)),
            ("fc2", fc2),
        ]
    )


def _cifarnet(
    rng: np.random.Generator,
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    init: str,
    overlapping_pool: bool = False,
) -> Sequential:
    k, s, p = (3, 2, 1) if overlapping_pool else (2, 2, 0)
    h, w = input_size
    for _ in range(3):  # conv 5x5 pad 2 keeps the size; the pool shrinks it
        h, w = conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)
    return Sequential(
        [
            ("conv1", Conv2d(in_channels, 32, 5, padding=2, rng=rng, init=init)),
            ("pool1", MaxPool2d(k, s, p)),
            ("relu1", ReLU()),
            ("conv2", Conv2d(32, 32, 5, padding=2, rng=rng, init=init)),
            ("relu2", ReLU()),
            ("pool2", AvgPool2d(k, s, p)),
            ("conv3", Conv2d(32, 64, 5, padding=2, rng=rng, init=init)),
            ("relu3", ReLU()),
            ("pool3", AvgPool2d(k, s, p)),
            ("flatten", Flatten()),
            ("fc1", Linear(64 * h * w, num_classes, rng=rng, init=init)),
        ]
    )


_REGISTRY: dict[str, tuple[Callable[..., Sequential], dict]] = {
    "lenet5": (_lenet5, {"in_channels": 1, "num_classes": 10, "input_size": 28}),
    "lenet5-bn": (_lenet5_bn, {"in_channels": 1, "num_classes": 10, "input_size": 28}),
    "cifarnet": (_cifarnet, {"in_channels": 3, "num_classes": 10, "input_size": 32}),
}

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def build_model(
    name: str,
    rng: np.random.Generator,
    *,
    in_channels: int | None = None,
    num_classes: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    init: str = "xavier",
    **kwargs,
) -> Sequential:
    """Build a registered model with float32 parameters initialised from ``rng``.

    Parameters
    ----------
    name
        One of :data:`MODEL_NAMES` (``"lenet5"``, ``"lenet5-bn"``, ``"cifarnet"``).
    rng
        Generator consumed for the weights in layer order (same seed -> same model).
    in_channels, num_classes, input_size
        Input channels, classes and spatial size (int or ``(H, W)``); ``None``
        selects the model's default (1/10/28 for the LeNets, 3/10/32 for cifarnet).
    init
        Weight initialiser, ``"xavier"`` (default) or ``"he"``.
    **kwargs
        Model options: ``dropout`` (lenet5-bn), ``overlapping_pool`` (cifarnet).
    """
    try:
        builder, defaults = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}") from None
    return builder(
        rng,
        in_channels=defaults["in_channels"] if in_channels is None else in_channels,
        num_classes=defaults["num_classes"] if num_classes is None else num_classes,
        input_size=_spatial(defaults["input_size"] if input_size is None else input_size),
        init=init,
        **kwargs,
    )
