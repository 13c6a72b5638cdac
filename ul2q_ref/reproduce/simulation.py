r"""Part 2: the paper's simulation-data evaluation.

The paper draws normal data with a non-zero mean, quantises it with μL2Q and with the
comparison schemes at the same bit widths, and plots reconstruction against the raw values.
Here the data are n = :data:`SAMPLES` draws from N(μ, σ²) with μ = :data:`MEAN` and
σ = :data:`STD` (weight-like magnitudes, and a mean that is not zero, as trained weights'
means are not), from a fixed seed. Each scheme quantises the whole tensor with one code book:

====================  =========================================================
bit width             schemes
====================  =========================================================
1                     μL2Q, binary (BWN)
2                     μL2Q, ternary (TWN), dynamic fixed point, clip
4, 8                  μL2Q, dynamic fixed point, clip
====================  =========================================================

For each the L2 loss is reported as the mean squared error MSE = mean((w − ŵ)²) and as the
signal-to-quantisation-noise ratio SQNR = 10·log₁₀(mean(w²)/MSE) dB (the definition of
``ul2q-ref quantize``); for μL2Q also the Gaussian prediction σ²·L(λ_k*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..api import quantize_with
from ..gaussian import PAPER_TABLE_I, expected_loss, optimal_lambda

MEAN = 0.02
"""μ of the simulated data."""

STD = 0.05
"""σ of the simulated data."""

SAMPLES = 1_000_000
"""n, the number of simulated values."""

BIT_WIDTHS = (1, 2, 4, 8)
"""The bit widths of the comparison."""

SCHEMES_BY_WIDTH: dict[int, tuple[str, ...]] = {
    1: ("ul2q", "binary"),
    2: ("ul2q", "ternary", "fixed_point", "clip"),
    4: ("ul2q", "fixed_point", "clip"),
    8: ("ul2q", "fixed_point", "clip"),
}
"""Which schemes are compared at each bit width (binary is 1-bit, ternary 2-bit, clip k ≥ 2)."""

SCHEME_LABELS = {
    "ul2q": "μL2Q",
    "binary": "binary (BWN)",
    "ternary": "ternary (TWN)",
    "fixed_point": "fixed point",
    "clip": "clip",
}
"""How the report names each scheme."""

LOSS_CURVE_BITS = (1, 2, 3, 4)
"""Bit widths of the loss-against-λ figure."""


@dataclass
class SimulationData:
    """The raw values and every reconstruction, kept for the figures (not in results.json)."""

    values: np.ndarray
    reconstructions: dict[tuple[str, int], np.ndarray]


def quantize_scheme(values: np.ndarray, scheme: str, bits: int) -> np.ndarray:
    """The reconstruction ŵ of `values` by `scheme` at `bits`, in float64."""
    return quantize_with(scheme, values, bits).dequantize(np.float64)


def compute(
    *,
    samples: int = SAMPLES,
    mean: float = MEAN,
    std: float = STD,
    seed: int = 0,
) -> tuple[dict[str, Any], SimulationData]:
    """Quantise simulated N(mean, std²) data with every scheme; MSE and SQNR of each.

    Parameters
    ----------
    samples : int
        Number of values n.
    mean, std : float
        μ and σ of the normal distribution.
    seed : int
        Seed of ``numpy.random.default_rng([seed, 2])``.

    Returns
    -------
    results : dict
        JSON-ready: the data's settings and sample moments, and one row per (bits, scheme).
    data : SimulationData
        The values and reconstructions, for the figures.
    """
    values = np.random.default_rng([seed, 2]).normal(mean, std, int(samples))
    power = float(np.mean(values * values))
    rows = []
    reconstructions = {}
    for bits in BIT_WIDTHS:
        for scheme in SCHEMES_BY_WIDTH[bits]:
            restored = quantize_scheme(values, scheme, bits)
            reconstructions[(scheme, bits)] = restored
            mse = float(np.mean((values - restored) ** 2))
            row = {
                "bits": bits,
                "scheme": scheme,
                "levels_used": int(np.unique(restored).size),
                "mse": mse,
                "sqnr_db": 10.0 * math.log10(power / mse) if mse > 0 else math.inf,
                "predicted_mse": None,
            }
            if scheme == "ul2q":
                row["predicted_mse"] = float(np.var(values)) * expected_loss(
                    optimal_lambda(bits), bits)
            rows.append(row)
    curves = []
    for bits in LOSS_CURVE_BITS:
        lam = optimal_lambda(bits)
        paper = PAPER_TABLE_I[bits][0]
        curves.append({
            "bits": bits,
            "lambda_exact": lam,
            "loss_exact": expected_loss(lam, bits),
            "paper_lambda": paper,
            "paper_lambda_loss": expected_loss(paper, bits),
        })
    results = {
        "distribution": {"mean": mean, "std": std, "samples": int(samples), "seed": int(seed)},
        "sample_mean": float(values.mean()),
        "sample_std": float(values.std()),
        "signal_power": power,
        "rows": rows,
        "loss_curves": curves,
    }
    return results, SimulationData(values, reconstructions)


__all__ = [
    "BIT_WIDTHS",
    "LOSS_CURVE_BITS",
    "MEAN",
    "SAMPLES",
    "SCHEMES_BY_WIDTH",
    "SCHEME_LABELS",
    "STD",
    "SimulationData",
    "compute",
    "quantize_scheme",
]
