"""``ul2q-ref reproduce``: the paper's evaluation as one command, with a report."""

from __future__ import annotations

import argparse

from ..reproduce import FULL_EPOCHS, PARTS, QUICK_DATA, QUICK_EPOCHS, ReproduceConfig, reproduce
from ._common import CommandError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _bits(text: str) -> int:
    value = _positive(text)
    if value > 16:
        raise argparse.ArgumentTypeError(f"bit widths are 1 to 16, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="re-derive the paper's evaluation as a report (tables, figures, JSON)",
        description=(
            "Re-derive the μL2Q paper's evaluation on this machine: (1) Table I, λ_k and its "
            "loss for k = 1..16, exact against published, with a Monte-Carlo witness; (2) the "
            "simulated-data comparison of μL2Q with binary, ternary, fixed point and clip; "
            "(3) LeNet-5 accuracy on MNIST under every scheme (Table IV); (4) how normal the "
            "trained weights are. Writes report.md, results.json and PNG figures (with the "
            "plot extra) to --out."
        ),
        epilog=(
            f"Quick mode (default) trains on the embedded MNIST subset ({QUICK_DATA}) for "
            f"{QUICK_EPOCHS} epoch per run and takes a few minutes on two cores. The full "
            "reproduction: ul2q-ref reproduce accuracy --data mnist:DIR --epochs N "
            f"(--full reads $UL2Q_MNIST_DIR and uses {FULL_EPOCHS} epochs). On a machine "
            "shared with other jobs, OMP_NUM_THREADS=1 keeps BLAS threads from competing for "
            "the cores, which can slow training several-fold."
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
                      help=f"full MNIST from $UL2Q_MNIST_DIR, {FULL_EPOCHS} epochs")
    parser.add_argument("--data", metavar="SPEC",
                        help="training data: mnist-small or mnist:DIR (overrides the mode)")
    parser.add_argument("--epochs", type=_positive, metavar="N",
                        help="epochs of each training run (overrides the mode)")
    parser.add_argument("--last-bits", type=_bits, metavar="K",
                        help="keep the classifier at K bits in the accuracy runs, as the paper "
                             "does with 8 (default: every layer at the stated width)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (0)")
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
            seed=args.seed, quiet=args.quiet, last_bits=args.last_bits,
        )
        results = reproduce(config)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        raise CommandError(str(error)) from None
    print(f"wrote {args.out}/report.md, results.json and {len(results['figures'])} figure(s) "
          f"in {results['wall_seconds']:.1f} s")
    return 0
