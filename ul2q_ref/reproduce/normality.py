r"""Part 4: are trained weights normal? The premise of μL2Q, checked layer by layer.

μL2Q chooses λ_k for φ = (w − μ)/σ ~ N(0, 1). For each quantisable layer of a trained model
this part reports how far its weights are from normal, and what that costs:

* skewness and excess kurtosis (``scipy.stats.skew``, ``scipy.stats.kurtosis``; both 0 for a
  normal distribution, −1.2 excess kurtosis for a uniform one);
* D'Agostino and Pearson's K² statistic (``scipy.stats.normaltest``), which combines the two.
  Its p-value is not reported: with n in the hundreds of thousands any real data set is
  "significantly" non-normal, so the p-value says nothing about *how* non-normal. Use the
  effect sizes instead: the moments, and
* the Kolmogorov–Smirnov distance D = sup |F_n(φ) − Φ(φ)| of the normalised weights from
  N(0, 1) (``scipy.stats.kstest``; a distance, not a test, here);
* the **loss ratio**: the layer's actual μL2Q loss on its own normalised weights,
  mean((φ − Q(φ))²) = mean((w − ŵ)²)/σ² with ŵ = ``fake_quantize(w, k)``, divided by the
  Gaussian prediction L(λ_k*) (:func:`ul2q_ref.expected_loss`). A ratio near 1 means the
  Gaussian model predicts the layer's loss;
* the layer's **own best step** λ̂_k, the minimiser of its empirical loss
  mean((φ − Q_λ(φ))²) (bounded Brent search over λ ∈ [λ_k*/4, 4λ_k*]), as λ̂_k/λ_k*, and
  the share of the loss it would save over λ_k*: what the Gaussian premise costs this layer.

The same statistics of the weights at initialisation (Xavier uniform, the seed's draw) are
given for comparison: a short training run leaves the weights close to that uniform start.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, stats

from ..api import encode, fake_quantize
from ..gaussian import expected_loss, optimal_lambda
from ..nn.models import Sequential

LOSS_BITS = (1, 2, 4, 8)
"""Bit widths of the loss ratio."""


def empirical_loss(phi: np.ndarray, lam: float, bits: int) -> float:
    """mean((φ − Q_λ(φ))²): the k-bit μL2Q loss with step λ on normalised values φ."""
    codes = encode(phi, lam, 0.0, bits)
    return float(np.mean((phi - lam * (codes.astype(np.float64) - 0.5)) ** 2))


def best_step(phi: np.ndarray, bits: int) -> tuple[float, float]:
    """The step λ̂ in [λ_k*/4, 4λ_k*] that minimises :func:`empirical_loss`, and that loss.

    A bounded Brent search on log λ (the loss is continuous in λ and, for data like these,
    has one minimum in that range).
    """
    centre = math.log(optimal_lambda(bits))
    found = optimize.minimize_scalar(
        lambda t: empirical_loss(phi, math.exp(t), bits),
        bounds=(centre - math.log(4.0), centre + math.log(4.0)), method="bounded",
        options={"xatol": 1e-5},
    )
    return math.exp(found.x), float(found.fun)


def layer_statistics(weights: np.ndarray, bits: tuple[int, ...] = LOSS_BITS) -> dict[str, Any]:
    """Normality statistics and μL2Q loss ratios of one weight tensor.

    Parameters
    ----------
    weights : numpy.ndarray
        The layer's weights (any shape; at least 20 values for K²).
    bits : tuple of int
        Bit widths of the loss ratio.

    Returns
    -------
    dict
        ``count``, ``mean``, ``std``, ``skewness``, ``excess_kurtosis``, ``k2_statistic``,
        ``ks_distance`` and ``loss`` (per k: actual, predicted, ratio, the best step's ratio
        to λ_k* and the saving it would give in percent).
    """
    values = np.asarray(weights, dtype=np.float64).ravel()
    mean, std = float(values.mean()), float(values.std())
    phi = (values - mean) / std
    losses = {}
    for k in bits:
        restored = fake_quantize(values, k)
        actual = float(np.mean((values - restored) ** 2)) / (std * std)
        predicted = expected_loss(optimal_lambda(k), k)
        best_lam, best_loss = best_step(phi, k)
        losses[str(k)] = {
            "actual": actual,
            "predicted": predicted,
            "ratio": actual / predicted,
            "best_lambda_ratio": best_lam / optimal_lambda(k),
            "best_saving_percent": 100.0 * (actual - best_loss) / actual,
        }
    return {
        "count": int(values.size),
        "mean": mean,
        "std": std,
        "skewness": float(stats.skew(values)),
        "excess_kurtosis": float(stats.kurtosis(values, fisher=True)),
        "k2_statistic": float(stats.normaltest(values).statistic),
        "ks_distance": float(stats.kstest(phi, "norm").statistic),
        "loss": losses,
    }


def layer_weights(model: Sequential) -> dict[str, np.ndarray]:
    """The full-precision (shadow) weights of each quantisable layer, by name."""
    return {name: layer.params["weight"] for name, layer in model.quantizable_layers()}


def compute(
    model: Sequential,
    initial: Sequential | None = None,
    *,
    source: str = "",
) -> dict[str, Any]:
    """Statistics of every quantisable layer of `model` (and of `initial`, if given).

    Parameters
    ----------
    model : Sequential
        The trained model.
    initial : Sequential, optional
        The same model at initialisation, for comparison.
    source : str
        A description of where `model` comes from, for the report.
    """
    trained = layer_weights(model)
    start = layer_weights(initial) if initial is not None else {}
    layers = []
    for name, weights in trained.items():
        row = {"layer": name, "shape": list(weights.shape), **layer_statistics(weights)}
        if name in start:
            init = layer_statistics(start[name], bits=())
            row["initial"] = {key: init[key] for key in
                              ("skewness", "excess_kurtosis", "k2_statistic", "ks_distance")}
        layers.append(row)
    return {"source": source, "loss_bits": list(LOSS_BITS), "layers": layers}


__all__ = ["LOSS_BITS", "best_step", "compute", "empirical_loss", "layer_statistics",
           "layer_weights"]
