"""The report's figures (PNG, matplotlib).

matplotlib is an optional extra (``pip install 'ul2q-ref[plot]'``) and is imported only
here, lazily, through :func:`new_figure`; without it :func:`matplotlib_available` is False,
no figure is drawn and the report says how to get them. Figures are drawn with
matplotlib's object-oriented API (``matplotlib.figure.Figure``), never ``pyplot``, so no
global state or interactive backend is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..gaussian import expected_loss, normal_pdf
from .simulation import BIT_WIDTHS, SCHEME_LABELS, SCHEMES_BY_WIDTH, SimulationData

INSTALL_HINT = "pip install 'ul2q-ref[plot]'"
"""How to get the figures."""

DPI = 120

COLOURS = {
    "ul2q": "#d62728",
    "binary": "#1f77b4",
    "ternary": "#2ca02c",
    "fixed_point": "#ff7f0e",
    "clip": "#9467bd",
    "float": "#333333",
    "paper": "#7f7f7f",
}


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (the ``plot`` extra is installed)."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        return False
    return True


def new_figure(**options: Any):
    """A new ``matplotlib.figure.Figure`` with constrained layout (imports matplotlib)."""
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **options)


def save(figure, path: Path) -> str:
    """Write `figure` as PNG to `path`; return the file name."""
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    return path.name


# --------------------------------------------------------------------------- part 1


def table1_figure(results: Mapping[str, Any], path: Path) -> str:
    """Excess loss of the published λ over the exact optimum, against k (log scale)."""
    rows = results["rows"]
    figure = new_figure(figsize=(7.5, 4.2))
    axes = figure.add_subplot()
    for source, marker, colour in (("Table I", "o", COLOURS["ul2q"]),
                                   ("range rule", "s", COLOURS["fixed_point"])):
        chosen = [row for row in rows if row["paper_source"] == source]
        bits = [row["bits"] for row in chosen]
        excess = [max(row["paper_excess_loss_percent"], 1e-7) for row in chosen]
        label = ("paper's Table I λ (k ≤ 8)" if source == "Table I" else
                 f"paper's range rule (n = {results['range_rule']['n']:,}, σ = 1)")
        axes.semilogy(bits, excess, marker=marker, linestyle="-", color=colour, label=label)
    axes.set_xticks(range(1, 17))
    axes.set_xlabel("bit width k")
    axes.set_ylabel(r"excess loss over $L(\lambda_k^*)$  (%)")
    axes.set_title(r"Loss the published step costs over the exact optimum $\lambda_k^*$")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper left")
    return save(figure, path)


# --------------------------------------------------------------------------- part 2


def reconstruction_figure(data: SimulationData, results: Mapping[str, Any], path: Path,
                          points: int = 4001) -> str:
    """Reconstruction ŵ against the raw value w on a dense uniform grid, one panel per k.

    Every scheme's quantiser is the one fitted to the simulated data. The grid spans
    μ ± 4.5σ in `points` equal steps; the value drawn at a grid point g is the
    reconstruction of the largest simulated value ≤ g (each quantiser is a non-decreasing
    step function of w, so this is its value at g except within one sample spacing of a
    cell boundary, and beyond the data's range it is the outermost level: the saturation
    shows flat, as it is).
    """
    order = np.argsort(data.values, kind="stable")
    ordered = data.values[order]
    distribution = results["distribution"]
    mean, std = distribution["mean"], distribution["std"]
    grid = np.linspace(mean - 4.5 * std, mean + 4.5 * std, points)
    below = np.clip(np.searchsorted(ordered, grid, side="right") - 1, 0, ordered.size - 1)
    chosen = order[below]
    figure = new_figure(figsize=(10, 8.5))
    panels = figure.subplots(2, 2)
    for axes, bits in zip(panels.ravel(), BIT_WIDTHS, strict=True):
        axes.axvspan(mean - 2 * std, mean + 2 * std, color="0.92", zorder=0,
                     label="μ ± 2σ (95 % of the data)")
        axes.plot(grid, grid, color="black", linestyle=":", linewidth=1.2, label="raw (ŵ = w)")
        for scheme in SCHEMES_BY_WIDTH[bits]:
            _reconstruction_line(axes, grid, data.reconstructions[(scheme, bits)][chosen],
                                 scheme, _mse(results, scheme, bits))
        axes.set_title(f"{bits} bit{'s' if bits > 1 else ''}")
        axes.set_xlabel("raw value w")
        axes.set_ylabel("reconstruction ŵ")
        axes.set_xlim(grid[0], grid[-1])
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", fontsize="small")
        if bits == BIT_WIDTHS[-1]:  # the levels are too fine to see: zoom in near μ
            inset = axes.inset_axes((0.60, 0.06, 0.38, 0.42))
            fine = np.linspace(mean, mean + 0.1 * std, 801)
            near = order[np.clip(np.searchsorted(ordered, fine, side="right") - 1, 0,
                                 ordered.size - 1)]
            inset.plot(fine, fine, color="black", linestyle=":", linewidth=1)
            for scheme in SCHEMES_BY_WIDTH[bits]:
                _reconstruction_line(inset, fine, data.reconstructions[(scheme, bits)][near],
                                     scheme, None)
            inset.set_xlim(fine[0], fine[-1])
            inset.set_title("zoom: w from μ to μ + 0.1σ", fontsize="small")
            inset.set_xticks([fine[0], fine[-1]], labels=["μ", "+0.1σ"])
            inset.tick_params(labelsize="small")
            inset.set_yticks([])
            axes.indicate_inset_zoom(inset, edgecolor="0.4")
    figure.suptitle(f"Simulated data: {distribution['samples']:,} values from N(μ, σ²), "
                    f"μ = {mean}, σ = {std}\neach quantiser fitted to the data, drawn on a "
                    "uniform grid of w")
    return save(figure, path)


LINE_STYLES = {"ul2q": "-", "binary": "-", "ternary": "-", "fixed_point": "--", "clip": "-."}


def _reconstruction_line(axes, raw, restored, scheme: str, mse: float | None) -> None:
    label = None if mse is None else f"{SCHEME_LABELS[scheme]}  (MSE {mse:.2e})"
    axes.plot(raw, restored, color=COLOURS[scheme], linestyle=LINE_STYLES[scheme],
              linewidth=2.2 if scheme == "ul2q" else 1.4, label=label,
              zorder=3 if scheme == "ul2q" else 2, drawstyle="steps-post")


def _mse(results: Mapping[str, Any], scheme: str, bits: int) -> float:
    return next(row["mse"] for row in results["rows"]
                if row["bits"] == bits and row["scheme"] == scheme)


def loss_curve_figure(results: Mapping[str, Any], path: Path) -> str:
    """L(λ)/L(λ_k*) against λ/λ_k* for k = 1..4 (top), and the excess loss near λ_k* (below).

    One scaling rule for every top panel: the step in units of λ_k* (0.5 to 1.8) and the
    loss in units of its minimum L(λ_k*) (1 to 2). Each bottom panel zooms on a window
    around λ_k* three times as wide as the paper's distance from it and shows the excess
    loss 100·(L(λ)/L(λ_k*) − 1) %, where the published step's cost can be read.
    """
    curves = results["loss_curves"]
    figure = new_figure(figsize=(16, 7.5))
    panels = figure.subplots(2, len(curves))
    for column, curve in enumerate(curves):
        bits, best, paper = curve["bits"], curve["lambda_exact"], curve["paper_lambda"]
        minimum = curve["loss_exact"]
        excess = 100.0 * (curve["paper_lambda_loss"] - minimum) / minimum
        axes, zoom = panels[0, column], panels[1, column]
        ratio = np.linspace(0.5, 1.8, 500)
        axes.plot(ratio, [expected_loss(r * best, bits) / minimum for r in ratio],
                  color="black", linewidth=1.5, label="L(λ) / L(λ*), exact")
        for target in (axes, zoom):
            target.axvline(1.0, color=COLOURS["ul2q"], linewidth=1.2,
                           label=f"exact λ* = {best:.6f}")
            target.axvline(paper / best, color=COLOURS["paper"], linestyle="--",
                           linewidth=1.2, label=f"paper λ = {paper:.4f}")
        axes.set_title(f"k = {bits}:  L(λ*) = {minimum:.6f}")
        axes.set_xlabel("step λ / λ*")
        axes.set_xlim(0.5, 1.8)
        axes.set_ylim(1.0, 2.0)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper center", fontsize="small")
        half = max(abs(paper / best - 1.0) * 3.0, 1e-4)
        window = np.linspace(1.0 - half, 1.0 + half, 301)
        zoom.plot(window, [100.0 * (expected_loss(r * best, bits) / minimum - 1.0)
                           for r in window], color="black", linewidth=1.3,
                  label="excess loss (%)")
        zoom.plot([paper / best], [excess], "x", color=COLOURS["paper"], markersize=9,
                  markeredgewidth=2, label=f"paper λ costs +{excess:.2g} %")
        zoom.set_xlabel("step λ / λ* (zoom)")
        zoom.set_xlim(window[0], window[-1])
        zoom.ticklabel_format(axis="both", style="sci", scilimits=(-3, 4), useOffset=False)
        zoom.grid(True, alpha=0.3)
        zoom.legend(loc="upper center", fontsize="small")
    panels[0, 0].set_ylabel("L(λ) / L(λ*)")
    panels[1, 0].set_ylabel("excess loss 100·(L(λ)/L(λ*) − 1)  (%)")
    figure.suptitle("Expected μL2Q loss on N(0, 1) against the step λ: every top panel on the "
                    "same relative scales; below, a zoom on the paper's step")
    return save(figure, path)


# --------------------------------------------------------------------------- part 3


def accuracy_figure(results: Mapping[str, Any], path: Path) -> str:
    """Test accuracy against bit width: this run's mean ± sd over seeds, and Table IV.

    Every scheme is drawn at its own bit width (binary at 1, ternary at 2), this run's
    series filled with error bars of one standard deviation over seeds, the paper's
    published numbers hollow at the same widths. The legend says what each trained on.
    """
    rows = {row["run"]: row for row in results["rows"]}
    settings = results["settings"]
    seeds = len(results.get("seeds", [0]))
    trained = _trained_on(results)
    figure = new_figure(figsize=(11.5, 5.8))
    axes = figure.add_subplot()
    shown: list[float] = []
    styles = {"ul2q": "o", "fixed_point": "s", "binary": "D", "ternary": "^"}
    for scheme, marker in styles.items():
        series = sorted((row["bits"], row["test_accuracy_percent"], row.get("sd_percent"))
                        for row in rows.values() if row["scheme"] == scheme)
        if series:
            bits = [item[0] for item in series]
            means = [item[1] for item in series]
            errors = [item[2] or 0.0 for item in series]
            axes.errorbar(bits, means, yerr=errors if seeds > 1 else None, marker=marker,
                          color=COLOURS[scheme], capsize=4, markersize=7,
                          linestyle="-" if len(bits) > 1 else "none",
                          label=f"{SCHEME_LABELS[scheme]}: this run")
            shown += [m - e for m, e in zip(means, errors, strict=True)]
            shown += [m + e for m, e in zip(means, errors, strict=True)]
        published = sorted((row["bits"], row["paper_accuracy_percent"]) for row in rows.values()
                           if row["scheme"] == scheme and row["paper_accuracy_percent"] is not None)
        if published:
            bits = [item[0] for item in published]
            values = [item[1] for item in published]
            axes.plot(bits, values, marker=marker, color=COLOURS[scheme], markersize=9,
                      markerfacecolor="none", linestyle=":" if len(bits) > 1 else "none",
                      label=f"{PAPER_LABELS.get(scheme, SCHEME_LABELS[scheme])}: paper")
            shown += values
    if "float" in rows:
        row = rows["float"]
        axes.axhline(row["test_accuracy_percent"], color=COLOURS["float"], linestyle="--",
                     label=f"float: this run, {row['test_accuracy_percent']:.2f} %")
        shown.append(row["test_accuracy_percent"])
        if row["paper_accuracy_percent"] is not None:
            axes.axhline(row["paper_accuracy_percent"], color=COLOURS["paper"],
                         linestyle="-.", linewidth=1,
                         label=f"float: paper, {row['paper_accuracy_percent']:.2f} %")
            shown.append(row["paper_accuracy_percent"])
    axes.set_xscale("log", base=2)
    axes.set_xticks([1, 2, 4, 8, 16], labels=["1", "2", "4", "8", "16"])
    axes.set_xlim(0.8, 20)
    low, high = min(shown), max(shown)
    margin = max(0.05 * (high - low), 0.05)
    axes.set_ylim(low - margin, high + margin)
    axes.set_xlabel("weight bit width k (classifier at max(k, 8) bits)"
                    if results.get("layers", "paper") == "paper" else
                    "weight bit width k (every layer)")
    axes.set_ylabel("test accuracy (%)")
    spread = f"mean ± sd over {seeds} seeds" if seeds > 1 else "one seed"
    title = (f"LeNet-5 on MNIST. This run: {trained}, {spread}.\n"
             "Paper: Table IV (Caffe, trained on all 60,000 images to convergence).")
    if settings.get("data") == "mnist-small":
        title += ("\nA short run on the subset shows how the schemes order, not the paper's "
                  "final accuracies.")
    axes.set_title(title, fontsize="medium")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(figure, path)


PAPER_LABELS = {"binary": "BitwiseNN (binary)", "ternary": "TNN (ternary)",
                "fixed_point": "fixed point (FP-k)"}
"""How Table IV names the baselines."""


def _trained_on(results: Mapping[str, Any]) -> str:
    """'60,000 images, 10,000 iterations at batch 50' and the like, for titles."""
    settings = results["settings"]
    images = results.get("train_images")
    data = "the embedded subset" if settings["data"] == "mnist-small" else "full MNIST"
    images_text = f"{images:,} images of {data}" if images else data
    if settings.get("max_iterations"):
        length = f"{settings['max_iterations']:,} iterations"
    else:
        length = f"{settings['epochs']} epoch{'s' if settings['epochs'] != 1 else ''}"
    return f"{images_text}, {length} at batch {settings['batch']}"


# --------------------------------------------------------------------------- part 4


def normality_figure(results: Mapping[str, Any], weights: Mapping[str, np.ndarray],
                     initial: Mapping[str, np.ndarray], path: Path,
                     caption: str | None = None) -> str:
    """Histogram of each layer's normalised weights φ against the N(0, 1) density.

    Each panel spans its own data's range of φ (at least ±3); `caption`, if given, is a
    second title line (a short run says there that its weights cannot judge the premise).
    """
    layers = results["layers"]
    columns = 2
    rows = -(-len(layers) // columns)
    figure = new_figure(figsize=(10, 3.8 * rows))
    panels = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes, row in zip(panels, layers, strict=False):
        name = row["layer"]
        values = np.asarray(weights[name], dtype=np.float64).ravel()
        phi = (values - values.mean()) / values.std()
        reach = max(3.0, float(np.ceil(np.abs(phi).max() * 10.0) / 10.0))
        grid = np.linspace(-reach, reach, 400)
        bins = np.linspace(-reach, reach, int(np.clip(np.sqrt(values.size) / 2, 20, 80)) + 1)
        axes.hist(phi, bins=bins, density=True, color=COLOURS["ul2q"],
                  alpha=0.55, label="trained")
        if name in initial:
            start = np.asarray(initial[name], dtype=np.float64).ravel()
            start = (start - start.mean()) / start.std()
            axes.hist(start, bins=bins, density=True, histtype="step", color=COLOURS["binary"],
                      linewidth=1.2, label="at initialisation")
        axes.plot(grid, normal_pdf(grid), color="black", linewidth=1.3, label="N(0, 1)")
        axes.set_title(f"{name}: {row['count']:,} weights, skew {row['skewness']:+.2f}, "
                       f"excess kurtosis {row['excess_kurtosis']:+.2f}", fontsize="medium")
        axes.set_xlabel("normalised weight φ = (w − μ)/σ")
        axes.set_ylabel("density")
        axes.set_xlim(-reach, reach)
        axes.legend(fontsize="small", loc="upper right")
    for axes in panels[len(layers):]:
        axes.set_visible(False)
    title = f"Normalised weights of {results['source']}"
    figure.suptitle(title + (f"\n{caption}" if caption else ""), fontsize="medium")
    return save(figure, path)


__all__ = [
    "INSTALL_HINT",
    "accuracy_figure",
    "loss_curve_figure",
    "matplotlib_available",
    "new_figure",
    "normality_figure",
    "reconstruction_figure",
    "table1_figure",
]
