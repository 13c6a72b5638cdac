r"""Part 1: the paper's Table I, re-derived.

For every bit width k = 1..16 this part puts side by side

* the exact optimal step λ_k* and its loss L(λ_k*) (:func:`ul2q_ref.optimal_lambda`,
  :func:`ul2q_ref.expected_loss`);
* the step the paper publishes: Table I for k ≤ 8 and, above 8 bits, Algorithm 1's range
  rule λ = (max − min)/(2^k − 1)
  (:func:`ul2q_ref.reproduce.lambda_loss.effective_lambda`), evaluated on
  normalised weights (σ = 1) with max − min taken as its expectation for n standard normal
  values, n = :data:`RANGE_RULE_N` by default;
* the loss of the published step and its excess over the optimum, in percent;
* Monte-Carlo estimates of L(λ_k*) with their standard errors, from a fixed seed: an
  independent witness of the closed form, which uses nothing but sampling and the package's
  code rule.

Two Monte-Carlo estimates are made. *Plain* sampling of N(0, 1) is the obvious witness, but
at the optimum part of the loss comes from the overload of the two outermost cells, beyond
λ_k*(2^(k−1) − 1) (4.2σ at k = 9, 5.9σ at k = 16), where fewer than one in a million samples
fall; the plain estimate then misses that part (about 5 % of the loss at k = 16) and its
standard error, computed from the same samples, cannot show it. The *importance-sampling*
estimate draws φ from N(0, s²) with s = :data:`IS_SCALE` and weights each squared error by
p(φ)/q(φ) ≤ s, which samples the tails thousands of times and is unbiased for every k.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..api import encode
from ..gaussian import PAPER_TABLE_I, expected_loss, optimal_lambda
from ..profiles import paper_lambda
from .lambda_loss import expected_range

BITS = tuple(range(1, 17))
"""The bit widths of the table."""

RANGE_RULE_N = 400_000
"""n of the range rule's E[max − min]: the weights of LeNet-5's largest layer (fc1)."""

MC_SAMPLES = 1_000_000
"""Monte-Carlo samples (the same samples serve every k)."""

IS_SCALE = 2.0
"""Standard deviation s of the importance-sampling proposal N(0, s²)."""


def monte_carlo_loss(
    samples: np.ndarray, lam: float, bits: int, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """The (weighted) sample mean of (φ − Q_λ(φ))² over `samples`, and its standard error.

    Q_λ is the k-bit μL2Q quantiser with step λ on already normalised values (α = λ, β = 0),
    computed with the package's own code rule (:func:`ul2q_ref.encode`). With `weights`
    (importance weights p(φ)/q(φ)) the mean of weight × squared error is returned.
    """
    codes = encode(samples, lam, 0.0, bits, backend="reference")
    errors = (samples - lam * (codes.astype(np.float64) - 0.5)) ** 2
    if weights is not None:
        errors = errors * weights
    return float(errors.mean()), float(errors.std(ddof=1) / math.sqrt(errors.size))


def importance_samples(count: int, seed: int, scale: float = IS_SCALE):
    """`count` draws from N(0, scale²) and their weights p(φ)/q(φ) for the target N(0, 1)."""
    draws = scale * np.random.default_rng([seed, 1]).standard_normal(int(count))
    weights = scale * np.exp(-0.5 * draws * draws * (1.0 - 1.0 / scale**2))
    return draws, weights


def compute(
    *,
    mc_samples: int = MC_SAMPLES,
    seed: int = 0,
    range_n: int = RANGE_RULE_N,
) -> dict[str, Any]:
    """Table I for k = 1..16 as a JSON-ready dictionary.

    Parameters
    ----------
    mc_samples : int
        Number of N(0, 1) samples of the Monte-Carlo column.
    seed : int
        Seed of the Monte-Carlo samples (``numpy.random.default_rng(seed)``).
    range_n : int
        n of E[max − min] for the paper's range rule above 8 bits.

    Returns
    -------
    dict
        ``rows`` (one dictionary per k) and the settings used.
    """
    samples = np.random.default_rng([seed, 0]).standard_normal(int(mc_samples))
    wide, weights = importance_samples(mc_samples, seed)
    expected_spread = expected_range(range_n)
    rows = []
    for k in BITS:
        lam = optimal_lambda(k)
        loss = expected_loss(lam, k)
        mc_loss, mc_error = monte_carlo_loss(samples, lam, k)
        is_loss, is_error = monte_carlo_loss(wide, lam, k, weights)
        if k in PAPER_TABLE_I:
            source = "Table I"
            paper_lam, printed_loss = PAPER_TABLE_I[k]
        else:
            source = "range rule"
            paper_lam, printed_loss = paper_lambda(k, expected_spread), None
        paper_loss = expected_loss(paper_lam, k)
        rows.append({
            "bits": k,
            "lambda_exact": lam,
            "loss_exact": loss,
            "loss_monte_carlo": mc_loss,
            "loss_monte_carlo_stderr": mc_error,
            "monte_carlo_z": (mc_loss - loss) / mc_error,
            "loss_importance_sampling": is_loss,
            "loss_importance_sampling_stderr": is_error,
            "importance_sampling_z": (is_loss - loss) / is_error,
            "paper_source": source,
            "paper_lambda": paper_lam,
            "paper_printed_loss": printed_loss,
            "paper_lambda_loss": paper_loss,
            "paper_lambda_relative_difference_percent": 100.0 * (paper_lam - lam) / lam,
            "paper_excess_loss_percent": 100.0 * (paper_loss - loss) / loss,
        })
    return {
        "rows": rows,
        "monte_carlo_samples": int(mc_samples),
        "monte_carlo_seed": int(seed),
        "importance_sampling_scale": IS_SCALE,
        "range_rule": {
            "n": int(range_n),
            "sigma": 1.0,
            "expected_range": expected_spread,
            "note": (
                "above 8 bits the paper's Algorithm 1 uses λ = (max − min)/(2^k − 1); here "
                f"max − min is its expectation E[R_n] = {expected_spread:.4f} for n = "
                f"{range_n:,} standard normal values (normalised weights, σ = 1, where the "
                "rule's second factor σ has no effect)"
            ),
        },
    }


__all__ = [
    "BITS",
    "IS_SCALE",
    "MC_SAMPLES",
    "RANGE_RULE_N",
    "compute",
    "importance_samples",
    "monte_carlo_loss",
]
