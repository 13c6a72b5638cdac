"""``ul2q-ref reproduce``: the paper's evaluation as one command, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..reproduce import PARTS, QUICK_DATA, QUICK_EPOCHS, ReproduceConfig, reproduce
from ..reproduce.recipes import LAYER_RULES, RECIPES
from ..reproduce.report import summary
from ._common import CommandError, int_at_least, usable_cores


def _positive(text: str) -> int:
    return int_at_least(text, 1, "a positive integer")


def _jobs(text: str) -> int:
    """--jobs: a positive count, or ``auto`` for the cores this process may use."""
    if text == "auto":
        return usable_cores()
    return int_at_least(text, 1, "a positive integer or 'auto'")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="re-derive the paper's evaluation as a report (tables, figures, JSON)",
        description=(
            "Re-derive the μL2Q paper's evaluation on this machine: (1) Table I, λ_k and its "
            "loss for k = 1..16, exact against published, with a Monte-Carlo witness; (2) the "
            "simulated-data comparison of μL2Q with binary, ternary, fixed point and clip; "
            "(3) LeNet-5 accuracy on MNIST under every scheme (Table IV), in the paper's "
            "configuration and over --seeds seeds; (4) how normal the trained weights are. "
            "Writes report.md, results.json and PNG figures (with the plot extra) to --out."
        ),
        epilog=(
            f"Quick mode (default) trains on the embedded MNIST subset ({QUICK_DATA}) for "
            f"{QUICK_EPOCHS} epoch per run and takes about a minute on two cores. The full "
            "reproduction (docs/reproduction.md): ul2q-ref reproduce --data mnist:DIR "
            "--iterations 10000 --seeds 3 --jobs 2 (--full takes the directory from "
            "UL2Q_MNIST_DIR and the recipe's own length). An unfinished run resumes when "
            "started again with the same --out. On a machine shared with other jobs, "
            "OMP_NUM_THREADS=1 keeps BLAS threads from competing for the cores."
        ),
    )
    parser.add_argument("part", nargs="?", choices=(*PARTS, "all"), default="all",
                        help="which part to run (default: all)")
    parser.add_argument("--out", default="ul2q-report", metavar="DIR",
                        help="output directory (default: ul2q-report/)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false",
                      help=f"embedded MNIST subset, {QUICK_EPOCHS} epoch (default)")
    mode.add_argument("--full", dest="full", action="store_true",
                      help="full MNIST from $UL2Q_MNIST_DIR, the recipe's iterations")
    parser.add_argument("--data", metavar="SPEC",
                        help="training data: mnist-small or mnist:DIR (overrides the mode)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive, metavar="N",
                        help="whole epochs of each training run (overrides the mode)")
    length.add_argument("--iterations", type=_positive, metavar="N",
                        help="SGD iterations of each training run, Caffe's max_iter "
                             "(overrides the mode)")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default="paper",
                        help="paper: Table II's LeNet-5, batch 50, weight decay 1e-4 (default); "
                             "caffe: the fork's lenet_bn solver")
    parser.add_argument("--layers", choices=LAYER_RULES, default="paper",
                        help="paper: every conv/fc weight at k bits, the classifier at "
                             "max(k, 8), biases float (default); uniform: k everywhere")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every random draw, and the first training seed (0)")
    parser.add_argument("--seeds", type=_positive, default=1, metavar="N",
                        help="trainings per configuration, seeds SEED..SEED+N-1 (1)")
    parser.add_argument("--jobs", type=_jobs, default="auto", metavar="N",
                        help="trainings at a time, in processes with one BLAS thread each; "
                             "auto (default): one per usable core")
    parser.add_argument("--force", action="store_true",
                        help="replace a finished report in --out and retrain its runs")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(run=run, full=False)


def run(args: argparse.Namespace) -> int:
    parts = PARTS if args.part == "all" else (args.part,)
    if args.data is not None and not (args.data == "mnist-small"
                                      or args.data.startswith("mnist:")):
        raise CommandError(f"--data: expected mnist-small or mnist:DIR, got {args.data!r}")
    try:
        config = ReproduceConfig(
            parts=parts, out=args.out, full=args.full, data=args.data, epochs=args.epochs,
            iterations=args.iterations, recipe=args.recipe, layers=args.layers,
            seed=args.seed, seeds=args.seeds, jobs=args.jobs, force=args.force,
            quiet=args.quiet,
        )
        results = reproduce(config)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        raise CommandError(str(error)) from None
    print(summary(results, Path(args.out)))
    print(f"wrote {args.out}/report.md, results.json and {len(results['figures'])} figure(s) "
          f"in {results['wall_seconds']:.1f} s")
    return 0
