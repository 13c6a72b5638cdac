r"""Quantisation-aware training: which quantiser each layer's weights go through.

The paper's training loop keeps full-precision *shadow* weights w_f. Every forward pass uses
w_q = Q(w_f) under the chosen scheme; the backward pass computes ∂L/∂w_q, applies it to w_f
unchanged (the straight-through estimator, ∂L/∂w_f := ∂L/∂w_q), and the optimiser updates
w_f. The layers implement the hook (``weight_quantizer`` in :mod:`ul2q_ref.nn.layers`); this
module builds the quantisers and decides which layer gets which bit width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from .. import Quantized, ul2q
from .._validate import check_bits
from ..api import fake_quantize_with, quantize_with
from ..kernels import select
from ..kernels.reference import WEIGHT_DTYPES
from ..schemes import SCHEMES

SCHEME_NAMES = ("float", *SCHEMES)
"""Every scheme a layer can be trained with (:data:`ul2q_ref.schemes.SCHEMES`); ``float``
means no quantisation."""

FIXED_BITS = {name: record.bits[0] for name, record in SCHEMES.items()
              if record.bits[0] == record.bits[1]}
"""Schemes whose bit width is part of their definition (binary 1, ternary 2)."""

Quantizer = Callable[[np.ndarray], np.ndarray]


def quantize_tensor(scheme: str, bits: int | None, weights: np.ndarray, *,
                    backend: str = "auto") -> Quantized:
    """The codes and code book of `weights` under `scheme` at `bits`.

    Decoding the result gives exactly what the quantiser of :func:`make_quantizer` returns;
    the export of the integer model relies on it.
    """
    width = cast(int, FIXED_BITS.get(scheme, bits))  # None is rejected by the bit check
    return quantize_with(scheme, weights, width, backend=backend)


def make_quantizer(scheme: str, bits: int | None, *, backend: str = "auto") -> Quantizer | None:
    """The function w_f ↦ w_q for `scheme` at `bits` (None for ``float``).

    μL2Q uses :func:`ul2q_ref.fake_quantize` (per tensor, as in the paper); the comparison
    schemes decode their :class:`~ul2q_ref.Quantized` result in the weight's dtype.
    """
    if scheme not in SCHEME_NAMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEME_NAMES)}, got {scheme!r}")
    if scheme == "float":
        return None
    bits = FIXED_BITS.get(scheme, bits)
    bits = check_bits(bits, low=SCHEMES[scheme].bits[0])
    if scheme == "ul2q":
        return _Ul2qQuantizer(bits, backend)

    def quantizer(weights: np.ndarray) -> np.ndarray:  # = quantize_tensor(...).dequantize()
        return fake_quantize_with(scheme, weights, bits, backend=backend)
    quantizer.__qualname__ = f"{scheme}:{bits}"
    return quantizer


class _Ul2qQuantizer:
    r"""w_f ↦ w_q = α(q − ½) + β, μL2Q per tensor, for the training loop's every forward pass.

    The first call goes through the public :func:`ul2q_ref.fake_quantize` (the whole input
    contract: dtype, NaN and ±inf, a representable code book). Later calls run the
    composition :func:`ul2q_ref.ul2q.fake_quantize` on the kernels directly, with no input
    validation (the code book's representability is still checked), since they see the same
    layer's shadow weights after an optimiser step: the same dtype and shape, finite unless
    training diverged, which the trainer's loss check reports (:mod:`ul2q_ref.nn.train`).
    Input of another dtype or shape goes through the public call again. The result is the
    public call's, bit for bit (tests/nn/test_qat.py).
    """

    def __init__(self, bits: int, backend: str) -> None:
        self.bits = bits
        self.backend = backend
        self.kernels = select(backend)
        self._checked: tuple[np.dtype, tuple[int, ...]] | None = None

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        if not isinstance(weights, np.ndarray) or self._checked != (weights.dtype,
                                                                     weights.shape):
            result = fake_quantize_with("ul2q", weights, self.bits, backend=self.backend)
            usable = isinstance(weights, np.ndarray) and weights.dtype in WEIGHT_DTYPES
            self._checked = (weights.dtype, weights.shape) if usable else None
            return result
        return ul2q.fake_quantize(weights, self.bits, None, weights.dtype, self.kernels)

    def __repr__(self) -> str:
        return f"<μL2Q quantizer, {self.bits} bits, backend={self.backend!r}>"



@dataclass(frozen=True)
class LayerPlan:
    """The scheme and bit width of every quantisable layer of a model.

    Attributes
    ----------
    scheme : str
        One of :data:`SCHEME_NAMES`, for every quantisable layer.
    bits : int or None
        The default bit width k (ignored for float, binary and ternary).
    last_bits : int or None
        The bit width of the last quantisable layer (the classifier), if different: the
        original LeNet configuration of the paper keeps it at 8 bits.
    overrides : mapping of str to int
        Bit widths for individual layers by name, applied last.
    quantize_bias : bool
        Quantise biases too (same scheme and bits as the layer's weights).
    """

    scheme: str = "float"
    bits: int | None = None
    last_bits: int | None = None
    overrides: Mapping[str, int] = field(default_factory=dict)
    quantize_bias: bool = False

    def bits_by_layer(self, layer_names: list[str]) -> dict[str, int | None]:
        """The bit width of each named layer (None where the scheme is float)."""
        unknown = set(self.overrides) - set(layer_names)
        if unknown:
            raise ValueError(
                f"--layer-bits names unknown layers {sorted(unknown)}; "
                f"the quantisable layers are {layer_names}"
            )
        if self.scheme == "float":
            return dict.fromkeys(layer_names)
        widths: dict[str, int | None] = {}
        for position, name in enumerate(layer_names):
            bits = FIXED_BITS.get(self.scheme, self.bits)
            if self.last_bits is not None and position == len(layer_names) - 1:
                bits = self.last_bits
            widths[name] = self.overrides.get(name, bits)
        return widths

    def scheme_for(self, bits: int | None) -> str:
        """The scheme of a layer with width `bits`: the plan's own, except that binary and
        ternary cannot take another width, so a layer given one (e.g. ``last_bits=8``) is
        quantised with dynamic fixed point at that width, the usual format for layers a
        binary or ternary network keeps at higher precision."""
        if self.scheme in FIXED_BITS and bits != FIXED_BITS[self.scheme]:
            return "fixed_point"
        return self.scheme

    def apply(self, model, *, backend: str = "auto") -> dict[str, tuple[str, int | None]]:
        """Attach the quantisers to `model`'s layers; return {layer: (scheme, bits)}."""
        names = [name for name, _ in model.quantizable_layers()]
        layers = dict(model.quantizable_layers())
        assignment = {}
        for name, bits in self.bits_by_layer(names).items():
            scheme = self.scheme_for(bits)
            layers[name].weight_quantizer = make_quantizer(scheme, bits, backend=backend)
            layers[name].bias_quantizer = (
                make_quantizer(scheme, bits, backend=backend) if self.quantize_bias else None
            )
            assignment[name] = (scheme, bits if scheme != "float" else None)
        return assignment
