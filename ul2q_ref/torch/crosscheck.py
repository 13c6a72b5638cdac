"""The conformance checker's adapter for the PyTorch operators (``--implementation torch``).

:func:`solve_crosscheck_request` answers one request of the checker's protocol
(docs/crosscheck.md, "Protocol") with :mod:`ul2q_ref.torch.ops`: μL2Q with the exact profile.
With ``mode="device"`` it checks the on-device path, whose statistics are checked against the
stated bounds (``Options(stats_ulps="stated")``) rather than bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..crosscheck.encoding import from_hex, to_hex
from .ops import check_mode, decode, encode, quantize


def solve_crosscheck_request(request: dict[str, Any], mode: str = "auto") -> dict[str, Any]:
    """Answer a ``ul2q-ref check`` request with the torch operators (μL2Q, exact profile)."""
    mode = check_mode(mode)
    if request["scheme"] != "ul2q" or request["profile"] != "exact":
        raise ValueError(f"the PyTorch bridge implements μL2Q with the exact profile only, "
                         f"not {request['scheme']}/{request['profile']}")
    dtype = request["dtype"]
    shape = tuple(int(n) for n in request["shape"])
    weights = torch.from_numpy(from_hex(request["input"]["hex"], dtype).reshape(shape))
    bits, axis = int(request["bits"]), request["axis"]
    result: dict[str, Any] = {"id": request["id"]}

    def part(codes: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> dict[str, Any]:
        output = decode(codes, alpha, beta, axis, weights.dtype)
        return {"codes": codes.reshape(-1).tolist(),
                "output": {"hex": to_hex(output.numpy(), dtype)}}

    if request.get("quantize", True):
        quantized = quantize(weights, bits, axis, mode=mode)
        result["quantize"] = {"alpha": {"hex": to_hex(quantized.alpha.numpy(), "float64")},
                              "beta": {"hex": to_hex(quantized.beta.numpy(), "float64")},
                              **part(quantized.codes, quantized.alpha, quantized.beta)}
    if request.get("encode") is not None:
        given = request["encode"]
        alpha = torch.from_numpy(np.atleast_1d(from_hex(given["alpha"]["hex"], "float64")))
        beta = torch.from_numpy(np.atleast_1d(from_hex(given["beta"]["hex"], "float64")))
        result["encode"] = part(encode(weights, alpha, beta, bits, axis), alpha, beta)
    return result


__all__ = ["solve_crosscheck_request"]
