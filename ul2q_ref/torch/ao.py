r"""μL2Q in torch.ao's QAT flow: :class:`UL2QFakeQuantize` and :func:`convert_qat`.

::

    from torch.ao.quantization import QConfig, prepare_qat
    qconfig = QConfig(activation=torch.nn.Identity,
                      weight=UL2QFakeQuantize.with_args(bits=2, axis=0))
    model.qconfig = qconfig
    prepare_qat(model, inplace=True)      # Linear → torch.ao.nn.qat.Linear, Conv → qat.Conv
    ...train...
    convert_qat(model)                    # back to nn.Linear/nn.Conv with a UL2Q on weight

torch.ao's own ``convert`` maps QAT layers to its int8 kernels, whose affine
``round(w/scale) + zero_point`` needs an integer zero point; μL2Q's is ½ − β/α, so those
kernels cannot hold ŵ = α(q − ½) + β exactly. :func:`convert_qat` is the working convert: each
QAT layer becomes its float layer with a :class:`~ul2q_ref.torch.UL2Q` parametrisation
(``bake=True``: with ŵ as a plain weight), and :func:`ul2q_ref.torch.convert` then gives the
integer codes and (α, β).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.ao.quantization import FakeQuantizeBase

from .._validate import check_bits
from .modules import _check_axis_argument, quantize_layer, remove_quantization
from .ops import check_mode, quantize, ul2q


class UL2QFakeQuantize(FakeQuantizeBase):
    """μL2Q as a torch.ao fake-quantize module: ``forward(w) = ul2q(w, bits, axis)``.

    Parameters
    ----------
    bits : int
        The bit width k, 1 to 16.
    axis : int, optional
        0 (default): one (α, β) per output channel; None: per tensor.
    mode : {"auto", "exact", "device"}
        As for :func:`ul2q_ref.torch.ul2q`.
    factory_kwargs : dict, optional
        What torch.ao's QAT layers pass (device, dtype); the buffers go to that device.

    ``disable_fake_quant()`` makes it the identity; ``calculate_qparams()`` returns the
    (scale, zero_point) of the last tensor seen in torch.ao's convention
    ŵ = scale·(q − zero_point): scale = α, zero_point = ½ − β/α (a float: not an integer).
    """

    def __init__(self, bits: int = 2, axis: int | None = 0, mode: str = "auto",
                 factory_kwargs: dict[str, Any] | None = None, **unused: Any) -> None:
        super().__init__()
        if unused:
            raise TypeError(f"UL2QFakeQuantize got unexpected arguments: {', '.join(unused)}")
        self.bits = check_bits(bits)
        self.axis = _check_axis_argument(axis)
        self.mode = check_mode(mode)
        device = (factory_kwargs or {}).get("device")
        if device is not None:
            self.to(device)
        self._last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer_enabled[0] == 1:
            self._last = x.detach()
        if self.fake_quant_enabled[0] == 1:
            return ul2q(x, self.bits, self.axis, mode=self.mode)
        return x

    @torch.jit.ignore
    def calculate_qparams(self, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero_point) = (α, ½ − β/α) of the last tensor seen (float64 tensors)."""
        if self._last is None:
            raise RuntimeError("UL2QFakeQuantize has seen no tensor yet: run a forward pass "
                               "with the observer enabled first")
        quantized = quantize(self._last, self.bits, self.axis, mode=self.mode)
        alpha, beta = quantized.alpha, quantized.beta
        zero_point = torch.where(alpha > 0, 0.5 - beta / alpha, torch.zeros_like(beta))
        return alpha, zero_point

    def extra_repr(self) -> str:
        return f"bits={self.bits}, axis={self.axis}, mode={self.mode!r}"


def _float_layer(module: nn.Module) -> nn.Module:
    """A QAT layer's float layer with the same parameters (shared, not copied)."""
    qat_layer: Any = module
    layer: nn.Module = qat_layer.to_float()
    layer.weight = module.weight
    if getattr(module, "bias", None) is not None:
        layer.bias = module.bias
    return layer


def convert_qat(model: nn.Module, *, bake: bool = False) -> nn.Module:
    """Replace every QAT layer whose weight fake-quant is :class:`UL2QFakeQuantize` by its
    float layer with a :class:`~ul2q_ref.torch.UL2Q` on ``weight`` (same bits and axis, the
    same Parameters), in place; ``bake=True`` leaves ŵ as a plain weight instead. torch.ao's
    observers and ``qconfig`` attributes are removed. Returns `model`."""
    from torch.ao.quantization.quantize import _remove_qconfig

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            fake = getattr(child, "weight_fake_quant", None)
            if not isinstance(fake, UL2QFakeQuantize):
                continue
            layer = _float_layer(child)
            quantize_layer(layer, fake.bits, fake.axis, mode=fake.mode)
            if bake:
                remove_quantization(layer, bake=True)
            setattr(parent, name, layer)
    _remove_qconfig(model)
    return model


__all__ = ["UL2QFakeQuantize", "convert_qat"]
