"""This package as an implementation under test: ``python -m ul2q_ref.crosscheck.reference_impl``.

It speaks the checker's protocol (docs/crosscheck.md, "Protocol"): it reads requests, one
JSON object per line, from standard input and writes one result line per request to
standard output, so ``ul2q-ref check DIR --command "python -m ul2q_ref.crosscheck.reference_impl"``
(one process per case) and the same with ``--batch`` (one process for all cases) both work.
``--implementation torch`` answers with the PyTorch bridge :mod:`ul2q_ref.torch` instead
(μL2Q, exact profile only).

Results are computed with the public API (:func:`ul2q_ref.quantize`, :func:`ul2q_ref.encode`,
:mod:`ul2q_ref.schemes`, :mod:`ul2q_ref.profiles`), whichever backend it selects, so the
self-check also checks the compiled kernels when they are built.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import profiles, schemes
from .._channels import broadcastable
from .._validate import check_axis
from ..api import encode as encode_exact
from ..api import quantize
from ..codebook import Quantized
from . import steps
from .encoding import from_hex, to_hex


def parse_request(request: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """The input array of a request and its other fields, checked."""
    dtype = request["dtype"]
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    shape = tuple(int(n) for n in request["shape"])
    weights = from_hex(request["input"]["hex"], dtype)
    if weights.size != int(np.prod(shape)):
        raise ValueError(f"input has {weights.size} values, shape {shape} needs {np.prod(shape)}")
    steps.check_case_kind(request["scheme"], request["profile"])
    return weights.reshape(shape), request


def codes_list(codes: np.ndarray, defined: np.ndarray) -> list[int | None]:
    """Codes in C order as JSON integers, None where undefined."""
    return [int(c) if ok else None
            for c, ok in zip(np.ravel(codes).tolist(), np.ravel(defined).tolist(), strict=True)]


def solve(request: dict[str, Any]) -> dict[str, Any]:
    """The reference's answer to one request: the statistics step (if asked) and encode step."""
    weights, request = parse_request(request)
    scheme, profile = request["scheme"], request["profile"]
    bits, axis = int(request["bits"]), request["axis"]
    parameter = request["parameter_dtype"]
    dtype = request["dtype"]
    result: dict[str, Any] = {"id": request["id"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", profiles.NegativeVarianceWarning)
        if request.get("quantize", True):
            if scheme == "ul2q":
                quantized = _quantize_ul2q(weights, bits, axis, profile)
                threshold = None
            else:
                quantized = schemes.quantize_with(scheme, weights, bits, axis=axis)
                threshold = steps.statistics(scheme, None, weights, bits, axis).threshold
            alpha = np.atleast_1d(np.asarray(quantized.alpha, dtype=np.float64))
            defined = np.broadcast_to(_defined(alpha, weights.ndim, axis), weights.shape)
            part: dict[str, Any] = {
                "alpha": {"hex": to_hex(alpha, parameter)},
                "beta": {"hex": to_hex(quantized.beta, parameter)},
                "codes": codes_list(quantized.codes, defined),
                "output": {"hex": to_hex(quantized.dequantize(), dtype)},
            }
            if threshold is not None:
                part["threshold"] = {"hex": to_hex(threshold, parameter)}
            result["quantize"] = part
        if request.get("encode") is not None:
            given = request["encode"]
            alpha = from_hex(given["alpha"]["hex"], parameter).astype(np.float64)
            beta = from_hex(given["beta"]["hex"], parameter).astype(np.float64)
            threshold = (from_hex(given["threshold"]["hex"], parameter).astype(np.float64)
                         if "threshold" in given else None)
            codes, defined, output = _encode_public(scheme, profile, weights, bits, axis,
                                                    alpha, beta, threshold)
            result["encode"] = {"codes": codes_list(codes, defined),
                                "output": {"hex": to_hex(output, dtype)}}
    return result


def _quantize_ul2q(weights: np.ndarray, bits: int, axis: int | None, profile: str
                   ) -> Quantized:
    """μL2Q through the public API; per-channel caffe cases through the profile's record.

    The Caffe code has no per-channel mode, so the public ``quantize`` refuses one; the
    conformance vectors extend its arithmetic to each channel as if it were a blob.
    """
    record = profiles.get(profile)
    if axis is None or record.per_channel:
        return quantize(weights, bits, axis=axis, profile=profile)
    channel_axis = check_axis(axis, weights.ndim)
    return profiles.quantize_with_profile(record, record.prepare(weights), bits, channel_axis,
                                          weights.dtype)


def _defined(alpha: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    return ~np.isnan(broadcastable(alpha, ndim, axis))


def _encode_public(
    scheme: str,
    profile: str | None,
    weights: np.ndarray,
    bits: int,
    axis: int | None,
    alpha: np.ndarray,
    beta: np.ndarray,
    threshold: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The encode step through the public API where there is one (μL2Q exact and paper)."""
    if scheme != "ul2q" or profile == "caffe":
        return steps.encode(scheme, profile, weights, bits, axis, alpha, beta, threshold)
    channel = axis is not None
    a = alpha if channel else alpha[0]
    b = beta if channel else beta[0]
    codes = encode_exact(weights, a, b, bits, axis=axis)
    decoded = Quantized(codes=codes, alpha=a, beta=b, zero_point=0.5, bits=bits, lam=None,
                        axis=None if axis is None else axis % weights.ndim, scheme="ul2q",
                        dtype=weights.dtype).dequantize()
    return codes, np.ones(weights.shape, dtype=bool), decoded


IMPLEMENTATIONS: dict[str, str] = {
    "reference": "ul2q_ref.crosscheck.reference_impl:solve",
    "torch": "ul2q_ref.torch:solve_crosscheck_request",
}
"""Each implementation's answering function, as ``module:function``, imported when chosen.

The torch adapter (μL2Q, exact profile; others reported unsupported) builds on this module,
so it is named here, not imported: the package keeps no import cycle."""


def implementation_function(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The answering function of the implementation called `name`."""
    module, _, function = IMPLEMENTATIONS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def answer(line: str, implementation: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    """One result line for one request line; failures become ``{"id", "error"}`` results."""
    request: Any = None
    try:
        request = json.loads(line)
        result = implementation(request)
    except Exception as error:  # noqa: BLE001 - reported to the checker, per case
        case_id = request.get("id") if isinstance(request, dict) else None
        result = {"id": case_id, "error": f"{type(error).__name__}: {error}"}
    return json.dumps(result, separators=(",", ":"))


def main(argv: Sequence[str] | None = None) -> int:
    """Answer every request line on standard input; return 0."""
    parser = argparse.ArgumentParser(
        prog="python -m ul2q_ref.crosscheck.reference_impl",
        description="Answer ul2q-ref check requests (JSON lines on stdin) with this package.",
    )
    parser.add_argument("--implementation", choices=sorted(IMPLEMENTATIONS),
                        default="reference", help="which code answers (default: reference)")
    args = parser.parse_args(argv)
    implementation = implementation_function(args.implementation)
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(answer(line, implementation) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
