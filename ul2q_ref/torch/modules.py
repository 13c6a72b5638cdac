r"""Modules and whole-model helpers: :class:`UL2Q`, :func:`quantize_model`, :func:`paper_plan`.

:class:`UL2Q` is a parametrisation: registered on a layer's ``weight`` it keeps the
full-precision weights w_f as ``parametrizations.weight.original`` and gives the layer
ŵ = μL2Q(w_f) in every forward pass, with the straight-through gradient to w_f — the
training loop of the paper. Its bits, axis, scheme and mode are saved in the ``state_dict``
(extra state) and checked when loaded.

**The paper's configuration** (the prototxts of the authors' Caffe fork, GongCheng1919/uL2Q:
``examples/mnist/ULQ/*``, ``examples/cifar10/ULQ/*``, ``models/ResNet-18/ULQ/*``): every
convolution and fully connected weight is quantised, the first layer included; biases stay
in floating point; the classifier keeps max(k, 8) bits, i.e. 8 bits when k ≤ 4; ResNet-18's
last fully connected layer is not quantised at all (its models carry ``ul2q_skip = ("fc",)``).

**Which tensors** (:data:`WEIGHTS`): the ``weight`` of Conv1d/2d/3d and Linear (axis 0, the
output channels), of ConvTranspose1d/2d/3d (axis 1: their weight is ``(in, out/groups,
…)``), ``MultiheadAttention``'s ``in_proj_weight`` (or ``q/k/v_proj_weight``; its
``out_proj`` is a Linear) and, opt-in, ``Embedding.weight`` (axis 0, one (α, β) per row; the
paper does not quantise embeddings). A Parameter shared by several modules (tied weights) is
one tensor: it is quantised once, at one width, on every module that holds it.

**The classifier** (kept at max(k, 8) bits), in this order: the ``classifier=`` argument; the
model's ``ul2q_classifier`` attribute (the paper's four networks have one); the last Linear
of an ``nn.Sequential`` model (its definition order is its execution order); the one Linear
whose own name is ``lm_head``, ``classifier``, ``head`` or ``fc`` (the first of these names
found, searched in that order). Otherwise there is no classifier and the report says so —
the rule never depends on the order in which a custom module defines its layers.
"""

from __future__ import annotations

import inspect
import os
import re
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._validate import check_bits
from .ops import SPARE_ATTRIBUTE, check_mode, straight_through

EXTRA_STATE_FORMAT = "ul2q-ref/torch-ul2q-v1"
SCHEMES = ("ul2q",)
QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose1d,
               nn.ConvTranspose2d, nn.ConvTranspose3d, nn.MultiheadAttention)
"""Layer types :func:`quantize_model` quantises by default (Embedding is opt-in)."""
CLASSIFIER_NAMES = ("lm_head", "classifier", "head", "fc")
"""Layer names taken for the classifier when nothing more specific says which it is."""


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
        """ŵ = μL2Q(w). bits, axis and mode were checked when set; the operator checks w
        (and its own arguments, through a cache), so no public-function checks per call.

        Inside a forward of a model quantised by :func:`quantize_model` (not while tracing)
        ŵ is computed once and reused while w is the same tensor, unmodified (its version),
        with the same grad mode and ``requires_grad``; the ŵ is dropped when the forward ends.
        """
        if _SCOPE.depth == 0 or _tracing():
            return straight_through(w, self.bits, self.axis, self.mode, self)
        key = (threading.get_ident(), _SCOPE.number, w._version, torch.is_grad_enabled(),
               w.requires_grad)
        held = self.__dict__.get("_held")
        if held is not None and held[0] == key and held[1]() is w:
            hit: torch.Tensor = held[2]
            return hit
        w_hat = straight_through(w, self.bits, self.axis, self.mode, self)
        if held is None:
            _SCOPE.holders.append(self)
        self.__dict__["_held"] = (key, weakref.ref(w), w_hat)
        return w_hat

    def __getstate__(self) -> dict[str, Any]:
        """The module's state without its per-call caches (the ŵ of a running forward, the
        spare array of the last ŵ): pickling and ``copy.deepcopy`` do not carry them."""
        state = super().__getstate__()  # nn.Module's: without _compiled_call_impl
        state.pop(SPARE_ATTRIBUTE, None)
        state.pop("_held", None)
        return state

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


def weight_names(module: nn.Module, *, embeddings: bool = False) -> dict[str, int]:
    """The weight-like tensors of `module` that μL2Q quantises: name → channel axis.

    Conv/Linear ``weight`` on axis 0, ConvTranspose ``weight`` on axis 1 (output channels),
    MultiheadAttention's ``in_proj_weight`` (or ``q/k/v_proj_weight``) on axis 0, and with
    ``embeddings=True`` an Embedding's ``weight`` on axis 0 (one (α, β) per row).
    """
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return {"weight": 1}
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        return {"weight": 0}
    if isinstance(module, nn.MultiheadAttention):
        names = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
        return {name: 0 for name in names if _tensor(module, name) is not None}
    if embeddings and isinstance(module, nn.Embedding):
        return {"weight": 0}
    return {}


def parametrizations(module: nn.Module) -> Any:
    """``module.parametrizations`` (a ModuleDict of ParametrizationLists), typed loosely."""
    return module._modules["parametrizations"]


def _tensor(module: nn.Module, name: str) -> torch.Tensor | None:
    """``module.<name>`` (the original under a parametrisation), or None."""
    if parametrize.is_parametrized(module, name):
        original: torch.Tensor = parametrizations(module)[name].original
        return original
    return module._parameters.get(name)


_PARAMETRIZED = re.compile(r"(^|\.)parametrizations\.([^.]+)\.original$")


def parameter_name(state_name: str) -> str:
    """The name a parameter has without its parametrisation:
    ``layer.parametrizations.weight.original`` → ``layer.weight``."""
    return _PARAMETRIZED.sub(r"\1\2", state_name)


def _qualified(module_name: str, tensor: str) -> str:
    return f"{module_name}.{tensor}" if module_name else tensor


def _report_name(module_name: str, tensor: str) -> str:
    """The name :func:`quantize_model` reports: the layer for ``weight``, else layer.tensor."""
    return module_name if tensor == "weight" else _qualified(module_name, tensor)


@dataclass
class Coverage:
    """One weight-like tensor in :class:`QuantizationReport`."""

    name: str
    """Its parameter name (``layer.weight``)."""
    layer_type: str
    bits: int | None
    """k, or None when it stays in floating point."""
    axis: int | None
    reason: str
    """Why this width (or why float)."""
    tied: tuple[str, ...] = ()
    """The other names of the same Parameter."""


class QuantizationReport(dict[str, int | None]):
    """What :func:`quantize_model` did: a dict layer name → bits (None: float), plus details.

    Keys are layer names (``conv1``) for a ``weight`` and ``layer.tensor`` for other tensors
    (``enc.layers.0.self_attn.in_proj_weight``), as :func:`read_plan` accepts them.
    ``entries`` lists every weight-like parameter (ndim ≥ 2, or a known layer's weight) with
    its width, axis and the reason; ``classifier`` is the classifier's name (or None) and
    ``classifier_rule`` how it was chosen. ``str(report)`` is a table.
    """

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[Coverage] = []
        self.classifier: str | None = None
        self.classifier_rule = ""

    def float_tensors(self) -> dict[str, str]:
        """Parameter name → why it stays float, for every weight-like tensor left float."""
        return {e.name: e.reason for e in self.entries if e.bits is None}

    def __str__(self) -> str:
        lines = [f"classifier: {self.classifier or 'none'} ({self.classifier_rule})"]
        for e in self.entries:
            width = "float" if e.bits is None else f"{e.bits}-bit axis={e.axis}"
            tied = f" (tied: {', '.join(e.tied)})" if e.tied else ""
            lines.append(f"{e.name:<48} {e.layer_type:<22} {width:<16} {e.reason}{tied}")
        return "\n".join(lines)


def _float_checkpoint_hook(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                           *args: Any) -> None:
    """Let a float checkpoint (``prefix.weight``) load into a quantised layer (nothing to do
    once :func:`remove_quantization` has removed its parametrisations)."""
    chains: Any = module._modules.get("parametrizations")
    for tensor in list(chains or ()):
        plain = prefix + tensor
        original = f"{prefix}parametrizations.{tensor}.original"
        if plain in state_dict and original not in state_dict:
            state_dict[original] = state_dict.pop(plain)
            for index, parametrization in enumerate(parametrizations(module)[tensor]):
                key = f"{prefix}parametrizations.{tensor}.{index}._extra_state"
                if isinstance(parametrization, UL2Q) and key not in state_dict:
                    state_dict[key] = parametrization.get_extra_state()


def quantize_layer(layer: nn.Module, bits: int, axis: int | None = 0, *,
                   mode: str = "auto", tensor: str = "weight") -> nn.Module:
    """Register :class:`UL2Q` on ``layer.<tensor>`` (in place); float checkpoints still load."""
    value = getattr(layer, tensor)
    if isinstance(value, nn.parameter.UninitializedParameter):
        raise ValueError(f"{type(layer).__name__}.{tensor} is not initialised yet (a lazy "
                         f"module): run one forward pass before quantising it")
    if parametrize.is_parametrized(layer, tensor) and any(
            isinstance(p, UL2Q) for p in parametrizations(layer)[tensor]):
        raise ValueError(f"{type(layer).__name__}.{tensor} is already quantised")
    parametrize.register_parametrization(layer, tensor, UL2Q(bits, axis, mode=mode))
    if not getattr(layer, "_ul2q_hook", False):
        layer._register_load_state_dict_pre_hook(_float_checkpoint_hook, with_module=True)
        object.__setattr__(layer, "_ul2q_hook", True)
    return layer


def _layer_name(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


def read_plan(plan: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, int | None]:
    """A per-layer plan: a mapping name → bits, or a plan.json ``{"layers": {name: bits}}``.

    Names are module names (``"conv1"``) or weight names (``"conv1.weight"``); bits are an
    integer 1..16, or None / ``"float"`` to keep that layer in floating point; a value may
    also be a record ``{"bits": k, ...}``.
    """
    entries: Mapping[str, Any]
    if isinstance(plan, Mapping):
        entries = plan
    else:
        from ..weights.plan import read_plan_document  # the one plan reader (bounded)

        entries = read_plan_document(plan)["layers"]
    result: dict[str, int | None] = {}
    for name, value in entries.items():
        if isinstance(value, Mapping):
            value = value.get("bits")
        if value is None or value == "float":
            result[_layer_name(name)] = None
        else:
            result[_layer_name(name)] = check_bits(value, name=f"plan[{name!r}]")
    return result


def quantizable_layers(model: nn.Module, *, embeddings: bool = False
                       ) -> list[tuple[str, nn.Module]]:
    """The layers of `model` with a weight-like tensor (:func:`weight_names`), in
    ``named_modules`` order."""
    return [(name, module) for name, module in model.named_modules()
            if weight_names(module, embeddings=embeddings)]


def find_classifier(model: nn.Module, classifier: str | None = None) -> tuple[str | None, str]:
    """The classifier's layer name and the rule that chose it (module docstring)."""
    modules = dict(model.named_modules())
    if classifier is not None:
        if not isinstance(modules.get(classifier), nn.Linear):
            linear = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
            raise ValueError(f"classifier={classifier!r} is not a Linear layer of the model "
                             f"(its Linear layers: {', '.join(linear) or 'none'})")
        return classifier, "classifier= argument"
    named = getattr(model, "ul2q_classifier", None)
    if named is not None:
        return named, "the model's ul2q_classifier"
    linear = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
    if isinstance(model, nn.Sequential) and linear:
        return linear[-1], "the last Linear of an nn.Sequential"
    for wanted in CLASSIFIER_NAMES:
        found = [name for name in linear if name.rsplit(".", 1)[-1] == wanted]
        if len(found) == 1:
            return found[0], f"the one Linear named {wanted!r}"
    return None, ("none identified: pass classifier=NAME or set model.ul2q_classifier "
                  "to keep one at max(k, 8) bits")


def paper_plan(model: nn.Module, bits: int, *, skip: Iterable[str] | None = None,
               classifier_bits: int | None = None, classifier: str | None = None
               ) -> dict[str, int | None]:
    """The paper's bits per layer: every quantisable weight at k, the classifier at max(k, 8).

    The classifier is found by :func:`find_classifier`; `classifier_bits` overrides max(k, 8).
    Layers in `skip` (default: the model's ``ul2q_skip`` attribute, e.g. ResNet-18's ``fc``)
    stay float.
    """
    report = _choose(model, check_bits(bits), axis=0, skip=skip, plan=None,
                     classifier_bits=classifier_bits, classifier=classifier, filter_fn=None,
                     types=None, embeddings=False)
    return dict(report)


def _skip_matches(skip: Iterable[Any], model: nn.Module) -> tuple[list[str], tuple[type, ...]]:
    """Names and types of `skip`; ValueError for a name that is no module or parameter."""
    names: list[str] = []
    types: list[type] = []
    known = {name for name, _ in model.named_modules()}
    known |= {name for name, _ in model.named_parameters(remove_duplicate=False)}
    known |= {parameter_name(n) for n in known}
    known |= {_layer_name(n) for n in known}
    for item in skip:
        if isinstance(item, type) and issubclass(item, nn.Module):
            types.append(item)
        elif isinstance(item, str):
            if item not in known:
                raise ValueError(f"skip names {item!r}, which is no module or parameter of "
                                 f"the model")
            names.append(item)
        else:
            raise TypeError(f"skip entries must be names or nn.Module types, got {item!r}")
    return names, tuple(types)


def _is_skipped(module_name: str, tensor: str, module: nn.Module, names: list[str],
                types: tuple[type, ...]) -> bool:
    full = _qualified(module_name, tensor)
    return isinstance(module, types) or any(
        full == n or module_name == n or full.startswith(n + ".") for n in names)


def _tensor_choice(module: nn.Module, module_name: str, tensor: str, value: torch.Tensor, *,
                   bits: int, top: int, is_classifier: bool, classifier_bits: int | None,
                   embeddings: bool, wanted_types: tuple[type, ...] | None,
                   filter_fn: Callable[[nn.Module, str], bool] | None,
                   skip: tuple[list[str], tuple[type, ...], bool]
                   ) -> tuple[int | None, str, bool]:
    """One tensor's width (None: float), the reason, and whether a float choice is explicit
    (an explicit one keeps every holder of a tied Parameter float; the embedding opt-in not)."""
    skip_names, skip_types, skip_given = skip
    if isinstance(value, nn.parameter.UninitializedParameter):
        return None, "uninitialised (lazy module): run a forward first", True
    if isinstance(module, nn.Embedding) and not embeddings:
        return None, "embedding (opt-in: embeddings=True)", False
    if wanted_types is not None and not isinstance(module, wanted_types):
        return None, "not of the types= selected", True
    if filter_fn is not None and not filter_fn(module, module_name):
        return None, "filter_fn returned False", True
    if _is_skipped(module_name, tensor, module, skip_names, skip_types):
        return None, "skip=" if skip_given else "model.ul2q_skip", True
    if not is_classifier:
        return bits, "k", True
    return top, ("classifier: max(k, 8)" if classifier_bits is None
                 else "classifier: classifier_bits"), True


def _resolve_ties(groups: dict[int, list[Coverage]], vetoed: set[int]) -> None:
    """One width for every holder of a tied Parameter: float if any holder's float choice
    is explicit, else the widest chosen (in place)."""
    for key, members in groups.items():
        if len(members) == 1:
            continue
        lead = max((m for m in members if m.bits is not None), key=lambda m: m.bits or 0,
                   default=None)
        for member in members:
            if key in vetoed or lead is None:
                if member.bits is not None:
                    member.bits, member.axis = None, None
                    member.reason = "tied to a tensor kept float"
            elif member is not lead and member.bits != lead.bits:
                member.bits, member.axis = lead.bits, lead.axis
                member.reason = f"tied to {lead.name} ({lead.reason})"


def _choose(model: nn.Module, bits: int, *, axis: int | None,
            skip: Iterable[Any] | None, plan: Mapping[str, Any] | str | os.PathLike[str] | None,
            classifier_bits: int | None, classifier: str | None,
            filter_fn: Callable[[nn.Module, str], bool] | None,
            types: Iterable[type] | None, embeddings: bool) -> QuantizationReport:
    """Decide the width of every weight-like tensor (nothing is changed)."""
    report = QuantizationReport()
    report.classifier, report.classifier_rule = find_classifier(model, classifier)
    top = max(bits, 8) if classifier_bits is None else check_bits(classifier_bits,
                                                                   name="classifier_bits")
    skip_names, skip_types = _skip_matches(
        getattr(model, "ul2q_skip", ()) if skip is None else skip, model)
    wanted_types = tuple(types) if types is not None else None
    overrides = read_plan(plan) if plan is not None else {}
    users: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        clean = parameter_name(name)
        users.setdefault(id(parameter), []).append(clean)
    seen_names: set[str] = set()
    groups: dict[int, list[Coverage]] = {}
    vetoed: set[int] = set()
    for module_name, module in model.named_modules():
        for tensor, tensor_axis in weight_names(module, embeddings=True).items():
            value = _tensor(module, tensor)
            if value is None:
                continue
            name = _report_name(module_name, tensor)
            seen_names.add(name)
            full = _qualified(module_name, tensor)
            layer_bits, reason, explicit = _tensor_choice(
                module, module_name, tensor, value, bits=bits, top=top,
                is_classifier=module_name == report.classifier,
                classifier_bits=classifier_bits, embeddings=embeddings,
                wanted_types=wanted_types, filter_fn=filter_fn,
                skip=(skip_names, skip_types, skip is not None))
            if name in overrides:
                layer_bits, reason = overrides[name], "plan"
            if layer_bits is None and explicit:
                vetoed.add(id(value))
            entry = Coverage(full, type(module).__name__, layer_bits,
                             None if layer_bits is None or axis is None else tensor_axis,
                             reason, tuple(u for u in users.get(id(value), ()) if u != full))
            groups.setdefault(id(value), []).append(entry)
            report.entries.append(entry)
    _resolve_ties(groups, vetoed)
    for entry in report.entries:
        module_name, _, tensor = entry.name.rpartition(".")
        report[_report_name(module_name, tensor)] = entry.bits
    unknown = sorted(set(overrides) - seen_names)
    if unknown:
        from ..weights.tensors import some_names

        raise ValueError(f"plan names layers the model does not have: {some_names(unknown)}"
                         f" (its layers: {some_names(sorted(seen_names))})")
    covered = {id(_tensor(m, t)) for _, m in model.named_modules()
               for t in weight_names(m, embeddings=True)}
    for name, parameter in model.named_parameters():
        if isinstance(parameter, nn.parameter.UninitializedParameter):
            continue
        if parameter.dim() >= 2 and id(parameter) not in covered:
            clean = parameter_name(name)
            report.entries.append(Coverage(clean, "Parameter", None, None,
                                           "not the weight of a layer type μL2Q quantises"))
    return report


def _tracing() -> bool:
    """Whether dynamo, TorchScript or a torch.func transform is running (no ŵ cache then)."""
    return (torch.compiler.is_compiling() or torch.jit.is_scripting()
            or torch._C._are_functorch_transforms_active())


class _ForwardScope(threading.local):
    """This thread's open forward scopes: their depth, a number per outermost scope, and the
    :class:`UL2Q` modules that hold a ŵ for it."""

    def __init__(self) -> None:
        self.depth = 0
        self.number = 0
        self.holders: list[UL2Q] = []


_SCOPE = _ForwardScope()


def _open_weight_cache(module: nn.Module, args: Any) -> None:
    """Forward pre-hook: within this forward each :class:`UL2Q` computes ŵ once."""
    if _tracing():
        return
    if _SCOPE.depth == 0:
        _SCOPE.number += 1
    _SCOPE.depth += 1
    module.__dict__.setdefault("_ul2q_scopes", []).append(_SCOPE.number)


def _close_weight_cache(module: nn.Module, args: Any, output: Any) -> None:
    """Forward hook (also called when the forward raises): ends the scope it opened and,
    outermost, drops every ŵ held for it."""
    scopes = module.__dict__.get("_ul2q_scopes")
    if not scopes or _tracing():
        return
    scopes.pop()
    _SCOPE.depth -= 1
    if _SCOPE.depth == 0:
        for holder in _SCOPE.holders:
            holder.__dict__["_held"] = None
        _SCOPE.holders.clear()


def _exporting() -> bool:
    """Whether ``torch.export`` runs the forward in Python (non-strict, its default; strict
    export traces it with dynamo)."""
    return torch.compiler.is_exporting() and not torch.compiler.is_dynamo_compiling()


def _forward_cached_while_exporting(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """A quantised model's ``forward``: its class's, run inside ``parametrize.cached()``
    while ``torch.export`` traces it.

    Then each parametrised tensor is computed at its first read and reused, so the exported
    program has one ``ul2q::fake_quantize`` node per quantised tensor instead of one per read
    (a MultiheadAttention reads ``in_proj_weight`` three times; TransformerEncoderLayer's
    fast-path checks read every weight): the program keeps unused reads. (The forward hooks
    cannot do it: ``torch.export`` skips ``always_call`` hooks when a forward raises, which
    would leave PyTorch's global parametrisation cache on.) Elsewhere it is the class's
    forward, unchanged.
    """
    forward = type(self).forward.__get__(self)
    if not _exporting():
        return forward(*args, **kwargs)
    with parametrize.cached():
        return forward(*args, **kwargs)


def _export_caching_forward(model: nn.Module) -> types.MethodType:
    """:func:`_forward_cached_while_exporting` bound to `model`, with the signature of the
    model's own forward (the names ``torch.export`` binds inputs to)."""
    template = _forward_cached_while_exporting
    function = types.FunctionType(template.__code__, template.__globals__, "forward")
    function.__doc__ = template.__doc__
    function.__signature__ = inspect.signature(type(model).forward)  # type: ignore[attr-defined]
    return types.MethodType(function, model)


def _cache_weights_per_forward(model: nn.Module) -> None:
    """Make every forward of `model` compute each ŵ once, however often layers read it
    (MultiheadAttention reads ``in_proj_weight`` three times), in eager mode (the hooks) and
    while ``torch.export`` traces it (:func:`_forward_cached_while_exporting`); idempotent."""
    if _open_weight_cache not in model._forward_pre_hooks.values():
        model.register_forward_pre_hook(_open_weight_cache)
        model.register_forward_hook(_close_weight_cache, always_call=True)
    if "forward" not in model.__dict__:  # a forward set on the instance is left alone
        model.__dict__["forward"] = _export_caching_forward(model)


def _stop_caching(model: nn.Module) -> None:
    forward = model.__dict__.get("forward")
    if getattr(forward, "__code__", None) is _forward_cached_while_exporting.__code__:
        del model.__dict__["forward"]
    for hooks, hook in ((model._forward_pre_hooks, _open_weight_cache),
                        (model._forward_hooks, _close_weight_cache)):
        for key in [k for k, v in hooks.items() if v is hook]:
            del hooks[key]
            model._forward_hooks_always_called.pop(key, None)


def quantize_model(model: nn.Module, bits: int, axis: int | None = 0, *,
                   filter_fn: Callable[[nn.Module, str], bool] | None = None,
                   types: Iterable[type] | None = None,
                   skip: Iterable[Any] | None = None,
                   plan: Mapping[str, Any] | str | os.PathLike[str] | None = None,
                   classifier: str | None = None,
                   classifier_bits: int | None = None,
                   embeddings: bool = False,
                   mode: str = "auto") -> QuantizationReport:
    """Quantise `model`'s weights in place with μL2Q (the paper's configuration by default).

    Parameters
    ----------
    model : torch.nn.Module
        Its weight-like tensors (module docstring) get a :class:`UL2Q` parametrisation;
        biases, norms and every other parameter stay float. A model that already has a
        :class:`UL2Q` is refused (ValueError): call :func:`remove_quantization` first.
    bits : int
        k for every tensor, except the classifier (max(k, 8)) and what the options say.
    axis : int, optional
        0 (default): one (α, β) per output channel (axis 1 for ConvTranspose); None: one
        per tensor.
    filter_fn : callable, optional
        torchao's convention: ``filter_fn(module, fqn) -> bool``, True to quantise the module.
    types : iterable of nn.Module types, optional
        Quantise only layers of these types.
    skip : iterable of str or nn.Module types, optional
        Layer names (a parent module's name skips everything below it), parameter names or
        types kept in float (default: ``model.ul2q_skip`` if present). A name that is no
        module or parameter of the model is a ValueError.
    plan : mapping or path, optional
        Per-layer bits overriding the above (:func:`read_plan`), for mixed precision.
    classifier : str, optional
        The classifier's layer name; otherwise the rule of the module docstring.
    classifier_bits : int, optional
        The classifier's bits instead of max(k, 8).
    embeddings : bool
        Quantise ``nn.Embedding`` weights too (off by default, as in the paper).
    mode : {"auto", "exact", "device"}
        Passed to every :class:`UL2Q`.

    Every forward of `model` then computes each ŵ once, however often its layers read a
    weight (forward hooks open a scope around it; not under ``torch.compile``, TorchScript or
    ``torch.func`` transforms; :meth:`UL2Q.forward` says when a ŵ is reused), and while
    ``torch.export`` traces it, through an instance ``forward``
    (:func:`_forward_cached_while_exporting`): one ``ul2q`` node per quantised tensor.
    :func:`remove_quantization` removes the hooks and that forward.

    Returns
    -------
    QuantizationReport
        A dict layer name → bits (None for float), with every weight-like tensor's width and
        the reason of every float one (``report.entries``, ``print(report)``).
    """
    bits = check_bits(bits)
    check_mode(mode)
    axis = _check_axis_argument(axis)
    existing = quantized_parameters(model)
    if existing:
        raise ValueError(f"model is already quantised ({len(existing)} tensors, e.g. "
                         f"{next(iter(existing))}); call remove_quantization(model, "
                         f"bake=False) before quantising it again")
    report = _choose(model, bits, axis=axis, skip=skip, plan=plan,
                     classifier_bits=classifier_bits, classifier=classifier,
                     filter_fn=filter_fn, types=types, embeddings=embeddings)
    modules = dict(model.named_modules())
    for entry in report.entries:
        if entry.bits is None:
            continue
        module_name, _, tensor = entry.name.rpartition(".")
        quantize_layer(modules[module_name], entry.bits, entry.axis, mode=mode, tensor=tensor)
    _cache_weights_per_forward(model)
    return report


def remove_quantization(model: nn.Module, *, bake: bool = True) -> nn.Module:
    """Remove every :class:`UL2Q` parametrisation (in place).

    ``bake=True`` leaves each weight at its quantised value ŵ (a float model that computes
    exactly what the quantised one did); ``bake=False`` restores the full-precision weights.
    Tied weights stay tied (one new Parameter for all the modules that shared one).
    Safe on a ``copy.deepcopy`` of a quantised model: the copy shares its parametrised layer
    classes with the original, which ``torch.nn.utils.parametrize.remove_parametrizations``
    would edit (and so break the original).
    """
    replacements: dict[int, nn.Parameter] = {}
    _stop_caching(model)
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        for tensor in list(parametrizations(module)):
            chain = parametrizations(module)[tensor]
            if not any(isinstance(p, UL2Q) for p in chain):
                continue
            if len(chain) != 1:  # other parametrisations too: PyTorch's removal
                parametrize.remove_parametrizations(module, tensor, leave_parametrized=bake)
                continue
            original = chain.original
            if id(original) not in replacements:
                with torch.no_grad():
                    value = getattr(module, tensor) if bake else original
                    replacements[id(original)] = nn.Parameter(
                        value.detach().clone(), requires_grad=original.requires_grad)
            del parametrizations(module)[tensor]
            if not parametrizations(module):
                module.__class__ = module.__class__.__bases__[0]  # ParametrizedConv2d → Conv2d
                del module._modules["parametrizations"]
            else:  # a fresh class without this property (deep copies share the old one)
                kept = {k: v for k, v in vars(module.__class__).items()
                        if k not in (tensor, "__dict__", "__weakref__")}
                module.__class__ = type(module.__class__.__name__,
                                        module.__class__.__bases__, kept)
            module.register_parameter(tensor, replacements[id(original)])
    return model


def quantized_parameters(model: nn.Module) -> dict[str, UL2Q]:
    """Parameter name (``layer.weight``) → its :class:`UL2Q`, for every quantised tensor
    (every holder of a tied Parameter listed)."""
    found = {}
    for name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor in parametrizations(module):
            for parametrization in parametrizations(module)[tensor]:
                if isinstance(parametrization, UL2Q):
                    found[_qualified(name, tensor)] = parametrization
    return found


def quantized_layers(model: nn.Module) -> dict[str, UL2Q]:
    """Layer name → its :class:`UL2Q`, for every layer whose ``weight`` is quantised."""
    return {_layer_name(name): p for name, p in quantized_parameters(model).items()
            if name == "weight" or name.endswith(".weight")}


__all__ = [
    "CLASSIFIER_NAMES",
    "QUANTIZABLE",
    "Coverage",
    "QuantizationReport",
    "UL2Q",
    "find_classifier",
    "parameter_name",
    "paper_plan",
    "quantizable_layers",
    "quantize_layer",
    "quantize_model",
    "quantized_layers",
    "quantized_parameters",
    "read_plan",
    "remove_quantization",
    "weight_names",
]
