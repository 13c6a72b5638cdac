"""``ul2q-ref inspect``: does a model's every weight tensor fit μL2Q's normality premise?"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import HAVE_FAST
from ._common import CommandError, bit_widths, check_output
from ._models import (
    MODEL_HELP,
    add_jobs,
    add_selection,
    load,
    measure,
    progress,
    table,
    write_json,
)

FORMAT = "ul2q-ref/inspect-v1"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="test the normality premise on a model file, layer by layer",
        description=(
            "For every weight tensor of MODEL: n, μ, σ, skewness, excess kurtosis, the "
            "Kolmogorov-Smirnov distance of φ = (w − μ)/σ to N(0, 1); for each k the Gaussian "
            "prediction L(λ_k*) against the actual normalised μL2Q loss (per tensor and per "
            "output channel); and the tensor's own best step and the share of the loss it "
            "would save. See docs/models.md."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    add_selection(parser)
    parser.add_argument("--bits", type=bit_widths, default=list(range(1, 9)), metavar="LIST",
                        help="bit widths: K, A-B or a list (default: 1-8)")
    parser.add_argument("--json", metavar="OUT.json", help="write every number as JSON")
    parser.add_argument("--figures", metavar="DIR",
                        help="write a histogram and QQ plot per layer and a summary (PNG)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT.json")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_jobs(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_output(args.json, args.force)
    if args.figures:
        folder = Path(args.figures)
        if folder.exists() and not folder.is_dir():
            raise CommandError(f"--figures {args.figures}: exists and is not a directory")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CommandError("--figures needs matplotlib (pip install 'ul2q-ref[plot]')") \
                from None
    model, tensors = load(args, args.model)
    start = time.perf_counter()
    rows = measure(args.model, tensors, args.bits, progress=progress(not args.quiet),
                   jobs=args.jobs)
    seconds = time.perf_counter() - start
    print(f"{args.model}: {model.format}, {len(tensors)} weight tensors, "
          f"{sum(r['n'] for r in rows):,} weights ({seconds:.1f} s, "
          f"{'compiled kernels' if HAVE_FAST else 'NumPy reference'})")
    print()
    print(statistics_table(rows))
    print()
    print("actual μL2Q loss / Gaussian prediction L(λ_k*), per tensor "
          "(per channel in the JSON):")
    print(loss_table(rows, "ratio", "{:.2f}"))
    print()
    print("share of the loss the tensor's own best step λ̂_k would save, "
          "and λ̂_k/λ_k*:")
    print(saving_table(rows))
    if args.json:
        document = {"format": FORMAT, "source": args.model, "file_format": model.format,
                    "bits": args.bits, "backend": "fast" if HAVE_FAST else "reference",
                    "seconds": seconds, "layers": rows}
        write_json(args.json, document)
        print(f"\nwrote {args.json}")
    if args.figures:
        write_figures(Path(args.figures), tensors, rows)
    return 0


def statistics_table(rows: list[dict]) -> str:
    body = []
    for row in rows:
        constant = row["skewness"] is None
        body.append([
            row["name"], "x".join(str(d) for d in row["shape"]), f"{row['n']:,}",
            f"{row['mean']:+.3e}", f"{row['std']:.3e}",
            "-" if constant else f"{row['skewness']:+.3f}",
            "-" if constant else f"{row['excess_kurtosis']:+.3f}",
            "-" if constant else f"{row['ks_distance']:.4f}",
        ])
    return table(["tensor", "shape", "n", "μ", "σ", "skew", "ex.kurt", "KS"], body)


def loss_table(rows: list[dict], key: str, style: str) -> str:
    bits = [entry["bits"] for entry in rows[0]["loss"]]
    body = [[row["name"], *("-" if e.get(key) is None else style.format(e[key])
                            for e in row["loss"])] for row in rows]
    return table(["tensor", *(f"k={k}" for k in bits)], body)


def saving_table(rows: list[dict]) -> str:
    bits = [entry["bits"] for entry in rows[0]["loss"]]
    body = []
    for row in rows:
        cells = []
        for entry in row["loss"]:
            if entry.get("best_saving") is None:
                cells.append("-")
            else:
                saving, ratio = 100 * entry["best_saving"], entry["best_lambda_ratio"]
                cells.append(f"{saving:.1f}% ({ratio:.2f})")
        body.append([row["name"], *cells])
    return table(["tensor", *(f"k={k}" for k in bits)], body)


def write_figures(folder: Path, tensors: list, rows: list[dict]) -> None:
    from ..weights.figures import file_name, layer_figure, summary_figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for tensor, row in zip(tensors, rows, strict=True):
        if row["std"] > 0:
            target = folder / f"{file_name(row['name'])}.png"
            layer_figure(tensor.load(), row, target)
            written.append(target.name)
    summary_figure(rows, folder / "summary.png")
    print(f"wrote {len(written) + 1} figures to {folder} (summary.png and one per layer)",
          file=sys.stdout)
