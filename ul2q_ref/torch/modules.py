r"""Modules and whole-model helpers: :class:`UL2Q`, :func:`quantize_model`, :func:`paper_plan`.

:class:`UL2Q` is a parametrisation: registered on a layer's ``weight`` it keeps the
full-precision weights w_f as ``parametrizations.weight.original`` and gives the layer
ŵ = μL2Q(w_f) in every forward pass, with the straight-through gradient to w_f — the
training loop of the paper. Its bits, axis, scheme and mode are saved in the ``state_dict``
(extra state) and checked when loaded.

**The paper's configuration** (the prototxts of the authors' Caffe fork, GongCheng1919/uL2Q:
``examples/mnist/ULQ/*``, ``examples/cifar10/ULQ/*``, ``models/ResNet-18/ULQ/*``): every
convolution and fully connected weight is quantised, the first layer included; biases stay
in floating point; the classifier (the last fully connected layer) keeps max(k, 8) bits,
i.e. 8 bits when k ≤ 4; ResNet-18's last fully connected layer is not quantised at all
(its models carry ``ul2q_skip = ("fc",)``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._validate import check_bits
from .ops import check_mode, ul2q

EXTRA_STATE_FORMAT = "ul2q-ref/torch-ul2q-v1"
SCHEMES = ("ul2q",)
QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""Layer types whose ``weight`` :func:`quantize_model` quantises."""


def _check_axis_argument(axis: Any) -> int | None:
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
        raise TypeError(f"axis must be None or an integer, got {axis!r}")
    return axis


class UL2Q(nn.Module):
    """A module that quantises the tensor it is given: ``UL2Q(bits, axis)(w) = ul2q(w, …)``.

    Use it as a parametrisation to train with quantised weights::

        torch.nn.utils.parametrize.register_parametrization(conv, "weight", UL2Q(2, axis=0))

    Parameters
    ----------
    bits : int
        The bit width k, 1 to 16.
    axis : int, optional
        The channel axis for per-channel (α, β), e.g. 0 for output channels; None for one
        (α, β) per tensor.
    scheme : {"ul2q"}
        The quantiser; only μL2Q is implemented in torch.
    mode : {"auto", "exact", "device"}
        Where and how exactly the statistics are computed (:mod:`ul2q_ref.torch.ops`).
    """

    def __init__(self, bits: int, axis: int | None = None, scheme: str = "ul2q",
                 mode: str = "auto") -> None:
        super().__init__()
        self.bits = check_bits(bits)
        self.axis = _check_axis_argument(axis)
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be 'ul2q' (the only scheme in torch), got {scheme!r}")
        self.scheme = scheme
        self.mode = check_mode(mode)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return ul2q(w, self.bits, self.axis, mode=self.mode)

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        """Identity: assigning ``layer.weight = w`` stores w as the full-precision weights."""
        return w

    def get_extra_state(self) -> dict[str, Any]:
        return {"format": EXTRA_STATE_FORMAT, "bits": self.bits, "axis": self.axis,
                "scheme": self.scheme, "mode": self.mode}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, Mapping) or state.get("format") != EXTRA_STATE_FORMAT:
            raise ValueError(f"UL2Q extra state must be a {EXTRA_STATE_FORMAT} record, "
                             f"got {state!r}")
        restored = UL2Q(state["bits"], state["axis"], state["scheme"], state["mode"])
        self.bits, self.axis = restored.bits, restored.axis
        self.scheme, self.mode = restored.scheme, restored.mode

    def extra_repr(self) -> str:
        return f"bits={self.bits}, axis={self.axis}"


def _float_checkpoint_hook(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                           *args: Any) -> None:
    """Let a float checkpoint (``prefix.weight``) load into a quantised layer."""
    plain = prefix + "weight"
    if plain in state_dict and prefix + "parametrizations.weight.original" not in state_dict:
        state_dict[prefix + "parametrizations.weight.original"] = state_dict.pop(plain)
        for index, parametrization in enumerate(module.parametrizations.weight):
            key = f"{prefix}parametrizations.weight.{index}._extra_state"
            if isinstance(parametrization, UL2Q) and key not in state_dict:
                state_dict[key] = parametrization.get_extra_state()


def quantize_layer(layer: nn.Module, bits: int, axis: int | None = 0, *,
                   mode: str = "auto") -> nn.Module:
    """Register :class:`UL2Q` on ``layer.weight`` (in place); float checkpoints still load."""
    parametrize.register_parametrization(layer, "weight", UL2Q(bits, axis, mode=mode))
    layer._register_load_state_dict_pre_hook(_float_checkpoint_hook, with_module=True)
    return layer


def _layer_name(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


def read_plan(plan: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, int | None]:
    """A per-layer plan: a mapping name → bits, or a plan.json ``{"layers": {name: bits}}``.

    Names are module names (``"conv1"``) or weight names (``"conv1.weight"``); bits are an
    integer 1..16, or None / ``"float"`` to keep that layer in floating point; a value may
    also be a record ``{"bits": k, ...}``.
    """
    if isinstance(plan, (str, os.PathLike)):
        path = Path(plan)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: cannot read the plan ({error})") from None
        if not isinstance(document, dict) or not isinstance(document.get("layers"), dict):
            raise ValueError(f"{path}: a plan file needs an object 'layers': {{name: bits}}")
        plan = document["layers"]
    result: dict[str, int | None] = {}
    for name, value in plan.items():
        if isinstance(value, Mapping):
            value = value.get("bits")
        if value is None or value == "float":
            result[_layer_name(name)] = None
        else:
            result[_layer_name(name)] = check_bits(value, name=f"plan[{name!r}]")
    return result


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolution and linear layers of `model`, in ``named_modules`` order."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, QUANTIZABLE)]


def paper_plan(model: nn.Module, bits: int, *, skip: Iterable[str] | None = None,
               classifier_bits: int | None = None) -> dict[str, int | None]:
    """The paper's bits per layer: every conv/linear at k, the classifier at max(k, 8).

    The classifier is the last ``nn.Linear``; `classifier_bits` overrides max(k, 8). Layers in
    `skip` (default: the model's ``ul2q_skip`` attribute, e.g. ResNet-18's ``fc``) stay float.
    """
    bits = check_bits(bits)
    skipped = set(getattr(model, "ul2q_skip", ()) if skip is None else skip)
    layers = quantizable_layers(model)
    linear = [name for name, module in layers if isinstance(module, nn.Linear)]
    classifier = linear[-1] if linear else None
    top = max(bits, 8) if classifier_bits is None else check_bits(classifier_bits)
    return {name: None if name in skipped else (top if name == classifier else bits)
            for name, _ in layers}


def quantize_model(model: nn.Module, bits: int, axis: int | None = 0, *,
                   skip: Iterable[str] | None = None,
                   plan: Mapping[str, Any] | str | os.PathLike[str] | None = None,
                   classifier_bits: int | None = None,
                   mode: str = "auto") -> dict[str, int | None]:
    """Quantise `model`'s weights in place with μL2Q (the paper's configuration by default).

    Parameters
    ----------
    model : torch.nn.Module
        Its Conv1d/2d/3d and Linear layers get a :class:`UL2Q` parametrisation on ``weight``;
        biases and every other parameter stay float.
    bits : int
        k for every layer, except the classifier (max(k, 8)) and what `skip`/`plan` say.
    axis : int, optional
        0 (default): one (α, β) per output channel; None: one per tensor.
    skip : iterable of str, optional
        Layer names kept in float (default: ``model.ul2q_skip`` if present).
    plan : mapping or path, optional
        Per-layer bits overriding the above (:func:`read_plan`), for mixed precision.
    classifier_bits : int, optional
        The classifier's bits instead of max(k, 8).
    mode : {"auto", "exact", "device"}
        Passed to every :class:`UL2Q`.

    Returns
    -------
    dict
        Layer name → bits (None for the layers left in float).
    """
    chosen = paper_plan(model, bits, skip=skip, classifier_bits=classifier_bits)
    if plan is not None:
        overrides = read_plan(plan)
        unknown = sorted(set(overrides) - set(chosen))
        if unknown:
            raise ValueError(f"plan names layers the model does not have: {', '.join(unknown)}"
                             f" (its layers: {', '.join(chosen)})")
        chosen.update(overrides)
    modules = dict(model.named_modules())
    for name, layer_bits in chosen.items():
        if layer_bits is not None:
            quantize_layer(modules[name], layer_bits, axis, mode=mode)
    return chosen


def remove_quantization(model: nn.Module, *, bake: bool = True) -> nn.Module:
    """Remove every :class:`UL2Q` parametrisation (in place).

    ``bake=True`` leaves each weight at its quantised value ŵ (a float model that computes
    exactly what the quantised one did); ``bake=False`` restores the full-precision weights.
    Safe on a ``copy.deepcopy`` of a quantised model: the copy shares its parametrised layer
    classes with the original, which ``torch.nn.utils.parametrize.remove_parametrizations``
    would edit (and so break the original).
    """
    for module in list(model.modules()):
        if not (parametrize.is_parametrized(module, "weight") and any(
                isinstance(p, UL2Q) for p in module.parametrizations.weight)):
            continue
        if set(module.parametrizations) != {"weight"}:  # other tensors parametrised too
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=bake)
            continue
        with torch.no_grad():
            value = module.weight if bake else module.parametrizations.weight.original
            weight = nn.Parameter(value.detach().clone(),
                                  requires_grad=module.parametrizations.weight.original
                                  .requires_grad)
        module.__class__ = module.__class__.__bases__[0]  # ParametrizedConv2d → Conv2d
        del module._modules["parametrizations"]
        module.weight = weight
    return model


def quantized_layers(model: nn.Module) -> dict[str, UL2Q]:
    """Layer name → its :class:`UL2Q` parametrisation, for every quantised layer."""
    found = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for parametrization in module.parametrizations.weight:
                if isinstance(parametrization, UL2Q):
                    found[name] = parametrization
    return found


__all__ = [
    "QUANTIZABLE",
    "UL2Q",
    "paper_plan",
    "quantizable_layers",
    "quantize_layer",
    "quantize_model",
    "quantized_layers",
    "read_plan",
    "remove_quantization",
]
