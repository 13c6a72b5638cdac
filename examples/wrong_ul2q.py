"""A deliberately wrong μL2Q implementation, for the worked example of ``ul2q-ref diagnose``.

It speaks the checker's protocol (docs/crosscheck.md, "Protocol and results format") with
NumPy and the standard library only, as a foreign implementation would, and makes two
common mistakes of a hand-written re-implementation:

* σ is NumPy's ``std(ddof=1)``, the unbiased estimator (the definition divides by n);
* codes are ``numpy.round((w − β)/α + ½)``, which rounds half to even, so a value exactly
  on a threshold β + jα goes to the upper cell only when j is odd (the definition:
  q = ⌊(w − β)/α⌋ + 1, always the upper cell).

Everything else follows the definition. Run it as
``ul2q-ref diagnose --command "python examples/wrong_ul2q.py" --batch``.
"""

from __future__ import annotations

import json
import sys

import numpy as np

LAMBDA = (
    1.5957691216057308, 0.9956866859435072, 0.5860194414434873, 0.33520061219997266,
    0.18813879027991828, 0.10406300944201463, 0.05686767238235853, 0.030762387582324604,
    0.01649895877387437, 0.008785464581074872, 0.004649841838046751, 0.0024484110837212185,
    0.0012836207393051493, 0.0006704517930375537, 0.00034905938596161665,
    0.00018122356978265308,
)
"""λ_k* for k = 1..16 (``ul2q-ref lambdas``)."""

UINT = {"float32": np.uint32, "float64": np.uint64}


def from_hex(patterns: list[str], dtype: str) -> np.ndarray:
    return np.array([int(p, 16) for p in patterns], dtype=UINT[dtype]).view(dtype)


def to_hex(values: np.ndarray, dtype: str) -> list[str]:
    width = 8 if dtype == "float32" else 16
    bits = np.ascontiguousarray(values, dtype=dtype).reshape(-1).view(UINT[dtype])
    return [f"{int(b):0{width}x}" for b in bits]


def rows(weights: np.ndarray, axis: int | None) -> np.ndarray:
    if axis is None:
        return weights.reshape(1, -1)
    return np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1)


def encode(row: np.ndarray, alpha: float, beta: float, bits: int) -> np.ndarray:
    half = 2 ** (bits - 1)
    if alpha == 0.0:
        return np.ones(row.shape)
    codes = np.round((row.astype(np.float64) - beta) / alpha + 0.5)  # half to even
    return np.clip(codes, 1 - half, half)


def answer(weights: np.ndarray, alphas: list[float], betas: list[float], bits: int,
           axis: int | None, dtype: str) -> tuple[list[int], np.ndarray]:
    channels = rows(weights, axis)
    codes = np.stack([encode(row, a, b, bits)
                      for row, a, b in zip(channels, alphas, betas, strict=True)])
    output = np.stack([a * (c - 0.5) + b for c, a, b in zip(codes, alphas, betas, strict=True)])
    shape = weights.shape if axis is None else \
        (weights.shape[axis],) + tuple(np.delete(weights.shape, axis))
    codes, output = codes.reshape(shape), output.reshape(shape)
    if axis is not None:
        codes, output = np.moveaxis(codes, 0, axis), np.moveaxis(output, 0, axis)
    return [int(c) for c in codes.reshape(-1)], output.astype(dtype)


def solve(request: dict) -> dict:
    dtype, parameter = request["dtype"], request["parameter_dtype"]
    weights = from_hex(request["input"]["hex"], dtype).reshape(request["shape"])
    bits, axis = request["bits"], request["axis"]
    if request["scheme"] != "ul2q":
        raise ValueError("only μL2Q")
    result = {"id": request["id"]}
    if request["quantize"]:
        channels = rows(weights, axis).astype(np.float64)
        if channels.shape[1] < 2:
            raise ValueError("need at least two values per channel")
        betas = [float(row.mean()) for row in channels]
        alphas = [LAMBDA[bits - 1] * float(row.std(ddof=1)) for row in channels]  # unbiased
        codes, output = answer(weights, alphas, betas, bits, axis, dtype)
        result["quantize"] = {"alpha": {"hex": to_hex(np.array(alphas), parameter)},
                              "beta": {"hex": to_hex(np.array(betas), parameter)},
                              "codes": codes, "output": {"hex": to_hex(output, dtype)}}
    given = request["encode"]
    alphas = from_hex(given["alpha"]["hex"], parameter).astype(np.float64).tolist()
    betas = from_hex(given["beta"]["hex"], parameter).astype(np.float64).tolist()
    codes, output = answer(weights, alphas, betas, bits, axis, dtype)
    result["encode"] = {"codes": codes, "output": {"hex": to_hex(output, dtype)}}
    return result


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            result = solve(request)
        except Exception as error:  # noqa: BLE001 - reported per request
            result = {"id": request.get("id"), "error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
