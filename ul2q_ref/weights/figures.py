"""Figures of ``ul2q-ref inspect --figures DIR`` (PNG; needs matplotlib, the ``plot`` extra).

* one per layer: the histogram of φ = (w − μ)/σ against the N(0, 1) density, with the
  k = 2 and k = 4 μL2Q thresholds, and a QQ plot of φ's quantiles against the normal's;
* one summary: the actual loss over the Gaussian prediction, actual/L(λ_k*), per layer and k.

Drawn with matplotlib's object-oriented API (no ``pyplot`` global state).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from .. import moments, optimal_lambda

DPI = 110
INSTALL_HINT = "pip install 'ul2q-ref[plot]'"
QQ_POINTS = 2000


def _figure(**options: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"--figures needs matplotlib ({INSTALL_HINT})") from None
    return Figure(layout="constrained", **options)


def file_name(name: str) -> str:
    """A safe PNG file name for a tensor name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "tensor"


def layer_figure(array: np.ndarray, row: dict[str, Any], path: Path) -> None:
    """Histogram of φ against N(0, 1) and a QQ plot, for one tensor, written to `path`."""
    weights = np.asarray(array, dtype=np.float64).ravel()
    mean, std = (float(v) for v in moments(weights))
    phi = np.sort((weights - mean) / std)
    figure = _figure(figsize=(9.0, 3.8))
    left, right = figure.subplots(1, 2, width_ratios=(1.6, 1.0))
    largest = float(np.max(np.abs(phi)))
    reach = max(4.0, min(largest, 12.0))
    bins = np.linspace(-reach, reach, 121)
    left.hist(np.clip(phi, -reach, reach), bins=bins, density=True, color="#4c72b0",
              alpha=0.75, label="φ = (w − μ)/σ")
    grid = np.linspace(-reach, reach, 400)
    left.plot(grid, np.exp(-0.5 * grid * grid) / np.sqrt(2 * np.pi), color="#d62728", lw=1.6,
              label="N(0, 1)")
    for k, style in ((2, "--"), (4, ":")):
        lam = optimal_lambda(k)
        half = 2 ** (k - 1)
        for j in range(1 - half, half):
            left.axvline(lam * j, color="#555555", lw=0.7, ls=style,
                         label=f"{k}-bit thresholds" if j == 0 else None)
    left.set_yscale("log")
    left.set_ylim(bottom=max(0.5 / phi.size, 1e-5))
    left.set_xlabel("φ" if largest <= reach else f"φ (the outer bins hold |φ| up to {largest:.3g})")
    left.set_ylabel("density (log scale)")
    left.set_title(f"{row['name']}  {tuple(row['shape'])}  n = {row['n']:,}", fontsize=10)
    left.legend(fontsize=7, loc="upper right")
    text = (f"skew {row['skewness']:+.3f}\nexcess kurtosis {row['excess_kurtosis']:+.3f}\n"
            f"KS distance {row['ks_distance']:.4f}")
    left.text(0.02, 0.97, text, transform=left.transAxes, va="top", fontsize=8,
              bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#cccccc"})
    count = min(QQ_POINTS, phi.size)
    levels = (np.arange(count) + 0.5) / count
    sample = np.quantile(phi, levels)
    normal = special.ndtri(levels)
    right.plot(normal, sample, ".", ms=2.5, color="#4c72b0")
    limit = max(float(np.max(np.abs(normal))), 1.0)
    right.plot([-limit, limit], [-limit, limit], color="#d62728", lw=1.2, label="y = x")
    right.set_xlabel("N(0, 1) quantile")
    right.set_ylabel("quantile of φ")
    right.set_title("QQ plot", fontsize=10)
    right.legend(fontsize=7, loc="upper left")
    right.grid(alpha=0.3)
    figure.savefig(path, dpi=DPI, metadata={"Software": None})


def summary_figure(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """A heat map of actual/predicted loss, layers × k, annotated, written to `path`."""
    usable = [row for row in rows if row["std"] > 0]
    if not usable:
        return
    bits = [entry["bits"] for entry in usable[0]["loss"]]
    ratios = np.array([[entry["ratio"] for entry in row["loss"]] for row in usable])
    figure = _figure(figsize=(1.2 + 0.75 * len(bits) + 2.0, 1.4 + 0.32 * len(usable)))
    axes = figure.subplots()
    from matplotlib.colors import LogNorm

    span = max(float(np.max(np.abs(np.log10(ratios)))), np.log10(1.25))
    image = axes.imshow(ratios, cmap="RdBu_r", aspect="auto",
                        norm=LogNorm(vmin=10 ** -span, vmax=10 ** span))
    for i in range(ratios.shape[0]):
        for j in range(ratios.shape[1]):
            value = ratios[i, j]
            dark = abs(np.log10(value)) > 0.6 * span
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if dark else "black")
    axes.set_xticks(range(len(bits)), [str(k) for k in bits])
    axes.set_yticks(range(len(usable)),
                    [f"{row['name']} ({row['n']:,})" for row in usable], fontsize=8)
    axes.set_xlabel("bits k")
    axes.set_title("actual μL2Q loss / Gaussian prediction L(λ_k*)  (1 = premise holds)",
                   fontsize=10)
    figure.colorbar(image, ax=axes, label="actual / predicted")
    figure.savefig(path, dpi=DPI, metadata={"Software": None})


__all__ = ["file_name", "layer_figure", "summary_figure"]
