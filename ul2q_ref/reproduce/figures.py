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
                          points: int = 3000) -> str:
    """Reconstruction ŵ against the raw value w, one panel per bit width."""
    order = np.argsort(data.values, kind="stable")
    chosen = order[np.linspace(0, order.size - 1, points).round().astype(np.int64)]
    raw = data.values[chosen]
    distribution = results["distribution"]
    mean, std = distribution["mean"], distribution["std"]
    figure = new_figure(figsize=(10, 8.5))
    panels = figure.subplots(2, 2)
    for axes, bits in zip(panels.ravel(), BIT_WIDTHS, strict=True):
        axes.axvspan(mean - 2 * std, mean + 2 * std, color="0.92", zorder=0,
                     label="μ ± 2σ (95 % of the data)")
        axes.plot(raw, raw, color="black", linestyle=":", linewidth=1.2, label="raw (ŵ = w)")
        for scheme in SCHEMES_BY_WIDTH[bits]:
            _reconstruction_line(axes, raw, data.reconstructions[(scheme, bits)][chosen],
                                 scheme, _mse(results, scheme, bits))
        axes.set_title(f"{bits} bit{'s' if bits > 1 else ''}")
        axes.set_xlabel("raw value w")
        axes.set_ylabel("reconstruction ŵ")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", fontsize="small")
        if bits == BIT_WIDTHS[-1]:  # the levels are too fine to see: zoom in near μ
            inset = axes.inset_axes((0.58, 0.07, 0.39, 0.39))
            window = (raw > mean) & (raw < mean + 0.1 * std)
            inset.plot(raw[window], raw[window], color="black", linestyle=":", linewidth=1)
            for scheme in SCHEMES_BY_WIDTH[bits]:
                _reconstruction_line(inset, raw[window],
                                     data.reconstructions[(scheme, bits)][chosen][window],
                                     scheme, None)
            inset.set_title("zoom: μ … μ + 0.1σ", fontsize="x-small")
            inset.tick_params(labelsize="xx-small")
            inset.xaxis.get_offset_text().set_fontsize("xx-small")
            inset.yaxis.get_offset_text().set_fontsize("xx-small")
            axes.indicate_inset_zoom(inset, edgecolor="0.4")
    figure.suptitle(f"Simulated data: {distribution['samples']:,} values from N(μ, σ²), "
                    f"μ = {mean}, σ = {std}")
    return save(figure, path)


LINE_STYLES = {"ul2q": "-", "binary": "-", "ternary": "-", "fixed_point": "--", "clip": "-."}


def _reconstruction_line(axes, raw, restored, scheme: str, mse: float | None) -> None:
    label = None if mse is None else f"{SCHEME_LABELS[scheme]}  (MSE {mse:.2e})"
    axes.plot(raw, restored, color=COLOURS[scheme], linestyle=LINE_STYLES[scheme],
              linewidth=2.2 if scheme == "ul2q" else 1.4, label=label,
              zorder=3 if scheme == "ul2q" else 2)


def _mse(results: Mapping[str, Any], scheme: str, bits: int) -> float:
    return next(row["mse"] for row in results["rows"]
                if row["bits"] == bits and row["scheme"] == scheme)


def loss_curve_figure(results: Mapping[str, Any], path: Path) -> str:
    """L(λ) against λ for k = 1..4, with λ_k* and the paper's λ marked."""
    figure = new_figure(figsize=(10, 7.5))
    panels = figure.subplots(2, 2)
    for axes, curve in zip(panels.ravel(), results["loss_curves"], strict=True):
        bits, best, paper = curve["bits"], curve["lambda_exact"], curve["paper_lambda"]
        grid = np.linspace(0.35 * best, 2.0 * best, 400)
        axes.plot(grid, [expected_loss(lam, bits) for lam in grid], color="black",
                  linewidth=1.5, label="L(λ), exact")
        excess = 100.0 * (curve["paper_lambda_loss"] - curve["loss_exact"]) / curve["loss_exact"]
        axes.axvline(best, color=COLOURS["ul2q"], linewidth=1.2)
        axes.plot([best], [curve["loss_exact"]], "o", color=COLOURS["ul2q"], markersize=7,
                  label=f"λ* = {best:.4f},  L = {curve['loss_exact']:.5f}")
        axes.axvline(paper, color=COLOURS["paper"], linestyle="--", linewidth=1.2)
        axes.plot([paper], [curve["paper_lambda_loss"]], "x", color=COLOURS["paper"],
                  markersize=10, markeredgewidth=2,
                  label=f"paper λ = {paper:.4f},  L = {curve['paper_lambda_loss']:.5f} "
                        f"(+{excess:.3f} %)")
        axes.set_title(f"k = {bits}")
        axes.set_xlabel("step λ (units of σ)")
        axes.set_ylabel("expected loss L(λ) = E[(φ − Q(φ))²]")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower center", fontsize="small")
        axes.set_ylim(0.0, 2.6 * curve["loss_exact"])
    figure.suptitle("Expected μL2Q loss on N(0, 1) against the step λ")
    return save(figure, path)


# --------------------------------------------------------------------------- part 3


def accuracy_figure(results: Mapping[str, Any], path: Path) -> str:
    """Test error (log scale) against bit width for every scheme, with the paper's μL2Q.

    Binary and ternary share their bit width with a μL2Q point, so their markers are drawn
    slightly to the left; every point is labelled with its test accuracy.
    """
    from matplotlib.ticker import FixedLocator, NullFormatter

    rows = {row["run"]: row for row in results["rows"]}
    figure = new_figure(figsize=(11, 5.5))
    axes = figure.add_subplot()
    shown: list[float] = []

    def error(accuracy: float) -> float:
        return max(100.0 - accuracy, 1e-2)

    def draw(bits, accuracies, scheme, marker, label, offset=1.0, **style):
        errors = [error(value) for value in accuracies]
        xs = [b * offset for b in bits]
        axes.plot(xs, errors, marker=marker, color=COLOURS[scheme], label=label, **style)
        shown.extend(errors)
        return xs, errors

    labels: list[tuple[float, float, float, str]] = []  # x, error, accuracy, colour
    for scheme, marker in (("ul2q", "o"), ("fixed_point", "s")):
        series = sorted((row["bits"], row["test_accuracy_percent"]) for row in rows.values()
                        if row["scheme"] == scheme)
        if series:
            bits, accuracies = zip(*series, strict=True)
            xs, errors = draw(bits, accuracies, scheme, marker,
                              f"{SCHEME_LABELS[scheme]} (this run)")
            labels += [(x, y, a, COLOURS[scheme]) for x, y, a in
                       zip(xs, errors, accuracies, strict=True)]
    for scheme, marker in (("binary", "D"), ("ternary", "^")):
        if scheme in rows:
            accuracy = rows[scheme]["test_accuracy_percent"]
            xs, errors = draw([rows[scheme]["bits"]], [accuracy], scheme, marker,
                              f"{SCHEME_LABELS[scheme]} (this run)", offset=0.9,
                              linestyle="none", markersize=8)
            labels.append((xs[0], errors[0], accuracy, COLOURS[scheme]))
    _label_points(axes, labels)
    if "float" in rows:
        accuracy = rows["float"]["test_accuracy_percent"]
        axes.axhline(error(accuracy), color=COLOURS["float"], linestyle="--",
                     label=f"float (this run): {accuracy:.2f} % accuracy")
        shown.append(error(accuracy))
    paper = sorted((row["bits"], row["paper_accuracy_percent"]) for row in rows.values()
                   if row["scheme"] == "ul2q" and row["paper_accuracy_percent"] is not None)
    if paper:
        bits, accuracies = zip(*paper, strict=True)
        draw(bits, accuracies, "paper", "o", "μL2Q (paper, Table IV)", markerfacecolor="none",
             linestyle=":")
    if rows.get("float", {}).get("paper_accuracy_percent") is not None:
        accuracy = rows["float"]["paper_accuracy_percent"]
        axes.axhline(error(accuracy), color=COLOURS["paper"], linestyle="-.", linewidth=1,
                     label=f"float (paper): {accuracy:.2f} % accuracy")
        shown.append(error(accuracy))
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks([1, 2, 4, 8, 16], labels=["1", "2", "4", "8", "16"])
    axes.set_xlim(0.75, 22)
    low, high = min(shown) / 1.25, max(shown) * 1.25
    axes.set_ylim(low, high)
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 70,
                         90) if low <= t <= high]
    axes.yaxis.set_major_locator(FixedLocator(ticks))
    axes.set_yticks(ticks, labels=[f"{t:g}" for t in ticks])
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("weight bit width k (every quantised layer)")
    axes.set_ylabel("test error (%) = 100 − accuracy  (log scale)")
    settings = results["settings"]
    epochs = settings["epochs"]
    axes.set_title(f"LeNet-5 on {settings['data']}: {epochs} epoch{'s' if epochs != 1 else ''}"
                   f" per run; labels: test accuracy (%)",
                   fontsize="medium")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(figure, path)


def _label_points(axes, labels: list[tuple[float, float, float, str]]) -> None:
    """Write each point's accuracy beside it without overlapping its neighbours.

    Points that share an x are labelled above (the highest error) and below (the lowest);
    a point alone at its x (binary, ternary, drawn left of the others) is labelled left.
    """
    by_x: dict[float, list[tuple[float, float, str]]] = {}
    for x, y, accuracy, colour in labels:
        by_x.setdefault(x, []).append((y, accuracy, colour))
    for x, points in by_x.items():
        points.sort(reverse=True)  # highest error first
        for rank, (y, accuracy, colour) in enumerate(points):
            if len(points) == 1 and x != round(x):
                offset, ha, va = (-8, 0), "right", "center"
            elif rank == 0:
                offset, ha, va = (6, 5), "left", "bottom"
            elif rank == len(points) - 1:
                offset, ha, va = (6, -5), "left", "top"
            else:
                offset, ha, va = (9, 0), "left", "center"
            axes.annotate(f"{accuracy:.2f}", (x, y), textcoords="offset points",
                          xytext=offset, ha=ha, va=va, fontsize="x-small", color=colour)


# --------------------------------------------------------------------------- part 4


def normality_figure(results: Mapping[str, Any], weights: Mapping[str, np.ndarray],
                     initial: Mapping[str, np.ndarray], path: Path) -> str:
    """Histogram of each layer's normalised weights φ against the N(0, 1) density."""
    layers = results["layers"]
    columns = 2
    rows = -(-len(layers) // columns)
    figure = new_figure(figsize=(10, 3.8 * rows))
    panels = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    grid = np.linspace(-5, 5, 400)
    for axes, row in zip(panels, layers, strict=False):
        name = row["layer"]
        values = np.asarray(weights[name], dtype=np.float64).ravel()
        phi = (values - values.mean()) / values.std()
        bins = np.linspace(-5, 5, int(np.clip(np.sqrt(values.size) / 2, 20, 80)) + 1)
        axes.hist(np.clip(phi, -5, 5), bins=bins, density=True, color=COLOURS["ul2q"],
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
        axes.set_xlim(-5, 5)
        axes.legend(fontsize="small", loc="upper right")
    for axes in panels[len(layers):]:
        axes.set_visible(False)
    figure.suptitle(f"Normalised weights of {results['source']}")
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
