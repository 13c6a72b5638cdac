r"""Adapters: a plain quantiser becomes the checker's ``solve(request) -> result`` in one line.

The checker speaks bit patterns in hex (docs/crosscheck.md, "Protocol"); implementations
speak arrays. These adapters translate, so that

.. code-block:: python

    from ul2q_ref.crosscheck import adapt, check, vectors

    solve = adapt(my_quantize)                       # my_quantize(w, bits[, axis])
    report = check.check_suite(vectors.load_suite("vectors/"),
                               check.function_provider(solve))

checks ``my_quantize`` in process. What the function returns decides what is checked:

* ŵ alone (an array): **ŵ only** — the statistics step and the codes are not checked, ŵ
  must equal the reference's;
* ``(α, β, codes, ŵ)`` (or a dict with keys ``alpha``, ``beta``, ``codes``, ``w_hat``):
  everything; with ``codes`` None the checker infers them from ŵ with the implementation's
  own α, β, q = round((ŵ − β)/α + z), and says so.

Encode-only cases (values exactly on thresholds for given α, β) need ``encode=``; without
it they are answered "not answerable" and reported as such, neither passing nor failing
(an implementation whose only entry point is the whole pipeline cannot be asked them;
``ul2q-ref diagnose`` probes its tie rule through the whole pipeline instead). A function
without an ``axis`` parameter answers per-channel cases with an error (a failure: the
cases exist because per-channel quantisation is part of the method).

The wire format itself is handled by :func:`answer` of the standalone template
``templates/adapter_template.py`` (``ul2q-ref check --print-adapter-template``), so the
in-process adapters and the file users copy into foreign environments share one
implementation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np

from .templates import adapter_template

Solve = Callable[[dict[str, Any]], dict[str, Any]]
"""``solve(request) -> result``, what :func:`ul2q_ref.crosscheck.check.function_provider` takes."""

TEMPLATE = "adapter_template.py"
"""The standalone adapter's file name in ``ul2q_ref/crosscheck/templates/``."""


def template_text() -> str:
    """The standalone adapter template (standard library and NumPy only), as text."""
    return resources.files("ul2q_ref.crosscheck.templates").joinpath(TEMPLATE).read_text(
        encoding="utf-8")


def takes_axis(function: Callable[..., Any], positional: int) -> bool:
    """Whether `function` accepts an ``axis``: by name, *args, or `positional` arguments."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature (a builtin, some C functions): try it
        return True
    count = 0
    for parameter in parameters:
        if parameter.name == "axis" or parameter.kind is parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count >= positional


def _axis_keyword_only(function: Callable[..., Any]) -> bool:
    """Whether `function` takes ``axis`` only by keyword (``def f(w, bits, *, axis=None)``)."""
    try:
        parameter = inspect.signature(function).parameters.get("axis")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind is parameter.KEYWORD_ONLY


def _with_axis(function: Callable[..., Any], positional: int, what: str
               ) -> Callable[..., Any]:
    """`function` called with the axis as its last argument, or only when the axis is None."""
    if _axis_keyword_only(function):
        def by_keyword(*arguments: Any) -> Any:
            *rest, axis = arguments
            return function(*rest, axis=axis)

        return by_keyword
    if takes_axis(function, positional):
        return function

    def without_axis(*arguments: Any) -> Any:
        *rest, axis = arguments
        if axis is not None:
            raise ValueError(f"the adapted {what} function takes no axis, so per-channel "
                             "cases cannot be answered")
        return function(*rest)

    return without_axis


def adapt(
    quantize: Callable[..., Any],
    *,
    encode: Callable[..., Any] | None = None,
    schemes: Sequence[str] = ("ul2q",),
) -> Solve:
    """``solve(request) -> result`` for a quantiser ``quantize(w, bits[, axis])``.

    Parameters
    ----------
    quantize : callable
        ``(w, bits[, axis])`` with w a float32/float64 NumPy array; returns ŵ, or
        ``(α, β, codes, ŵ)`` (codes may be None), or a dict with keys ``alpha``, ``beta``,
        ``codes``, ``w_hat``. α and β: scalars or one per channel.
    encode : callable, optional
        ``(w, α, β, bits[, axis]) -> (codes, ŵ)`` for given α, β; without it encode-only
        cases are "not answerable".
    schemes : sequence of str
        The schemes it implements; requests for others are answered with an error.
    """
    for name, function in (("quantize", quantize), ("encode", encode)):
        if function is not None and not callable(function):
            raise TypeError(f"adapt: {name} must be a function, got {type(function).__name__}")
    whole = _with_axis(quantize, 3, "quantize")
    given = None if encode is None else _with_axis(encode, 5, "encode")
    names = tuple(schemes)

    def solve(request: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = adapter_template.answer(request, whole, given, names)
        return result

    return solve


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def adapt_torch_module(
    module: Any,
    *,
    alpha: str = "alpha",
    beta: str = "beta",
    codes: str = "codes",
    encode: Callable[..., Any] | None = None,
    schemes: Sequence[str] = ("ul2q",),
) -> Solve:
    """``solve(request) -> result`` for a PyTorch quantiser module (torch imported when used).

    Parameters
    ----------
    module : torch.nn.Module or callable
        A module that maps a weight tensor to ŵ (used for every request, so select cases of
        its bit width), or a factory ``(bits, axis) -> module`` called per request.
    alpha, beta, codes : str
        Attribute names read from the module after its forward call, when present (α, β:
        scalars or one per channel; a tensor or array). Without α and β the check is ŵ only;
        without codes they are inferred from ŵ.
    encode, schemes
        As for :func:`adapt`.
    """
    if not callable(module):
        raise TypeError(f"adapt_torch_module: expected a torch.nn.Module or a factory "
                        f"(bits, axis) -> module, got {type(module).__name__}")

    def quantize(w: np.ndarray, bits: int, axis: int | None) -> dict[str, Any]:
        import torch

        instance = module if isinstance(module, torch.nn.Module) else module(bits, axis)
        with torch.no_grad():
            w_hat = instance(torch.from_numpy(np.array(w)))
        found: dict[str, Any] = {"w_hat": _as_numpy(w_hat)}
        for key, name in (("alpha", alpha), ("beta", beta), ("codes", codes)):
            value = getattr(instance, name, None)
            if value is not None and not callable(value):
                found[key] = _as_numpy(value)
        return found

    return adapt(quantize, encode=encode, schemes=schemes)


answer = adapter_template.answer
"""The wire-format translation both the adapters and the standalone template use."""

__all__ = ["Solve", "TEMPLATE", "adapt", "adapt_torch_module", "answer", "takes_axis",
           "template_text"]
