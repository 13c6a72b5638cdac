r"""μL2Q as a torchao workflow: ``quantize_(model, UL2QConfig(bits=2), filter_fn=…)``.

torchao is an optional dependency (``pip install torchao``); importing this module without it
raises ImportError. :class:`UL2QConfig` registers a :class:`~ul2q_ref.torch.UL2Q`
parametrisation on the weight-like tensors (:func:`ul2q_ref.torch.modules.weight_names`) of
every module torchao's ``filter_fn(module, fqn)`` selects — by default torchao's own
(``nn.Linear`` only). Unlike :func:`ul2q_ref.torch.quantize_model` there is no classifier rule
and no report: torchao applies one config to what the filter selects.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torchao.core.config import AOBaseConfig
from torchao.quantization.transform_module import register_quantize_module_handler

from .._validate import check_bits
from .modules import _check_axis_argument, quantize_layer, weight_names
from .ops import check_mode


@dataclass
class UL2QConfig(AOBaseConfig):
    """k-bit μL2Q weights (QAT: ŵ in the forward pass, straight-through gradient to w).

    Attributes
    ----------
    bits : int
        The bit width k, 1 to 16.
    axis : int, optional
        0 (default): one (α, β) per output channel (axis 1 for ConvTranspose); None: one per
        tensor.
    embeddings : bool
        Whether an ``nn.Embedding`` the filter selects is quantised (off, as in the paper).
    mode : {"auto", "exact", "device"}
        As for :func:`ul2q_ref.torch.ul2q`.
    """

    bits: int = 2
    axis: int | None = 0
    embeddings: bool = False
    mode: str = "auto"

    def __post_init__(self) -> None:
        self.bits = check_bits(self.bits)
        self.axis = _check_axis_argument(self.axis)
        self.mode = check_mode(self.mode)


@register_quantize_module_handler(UL2QConfig)
def _apply(module: nn.Module, config: UL2QConfig) -> nn.Module:
    for tensor, axis in weight_names(module, embeddings=config.embeddings).items():
        quantize_layer(module, config.bits, None if config.axis is None else axis,
                       mode=config.mode, tensor=tensor)
    return module


__all__ = ["UL2QConfig"]
