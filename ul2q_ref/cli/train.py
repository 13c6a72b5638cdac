"""``ul2q-ref train``: train a small CNN with μL2Q (or another scheme) on the CPU."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..nn.models import MODEL_NAMES
from ..nn.qat import FIXED_BITS, SCHEME_NAMES
from ..nn.train import (
    CHECKPOINT_NAME,
    RunLocked,
    TrainConfig,
    TrainingDiverged,
    train,
    write_metrics,
)
from ._common import CommandError, one_bit_width


def _layer_bits(text: str) -> tuple[str, int]:
    name, _, bits = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"expected LAYER=K such as fc2=8, got {text!r}")
    return name, one_bit_width(bits)


def _milestones(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs such as 5,8, got {text!r}"
        ) from None


RUN_OPTIONS = ("model", "scheme", "bits", "last_bits", "layer_bits", "quantize_bias", "batch",
               "lr", "momentum", "weight_decay", "lr_policy", "gamma", "power", "milestones",
               "data", "train_limit", "test_limit", "seed", "backend")
"""Options that define a run: saved in its checkpoint, so --resume does not take them."""


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train a LeNet-5-class model with μL2Q quantisation-aware training",
        description=(
            "Train a small CNN in NumPy on the CPU. Quantised layers keep full-precision "
            "shadow weights; each forward pass uses their quantisation, and the gradient with "
            "respect to the quantised weights updates the shadow weights (straight-through). "
            "A checkpoint and metrics.json are written to --out after every epoch. A loss "
            "that becomes NaN or infinite stops the run (exit status 2), keeping the last "
            "checkpoint."
        ),
        epilog=(
            "Data: 'mnist-small' is the embedded MNIST subset (first 20,000 training images, "
            "all 10,000 test images); 'mnist:DIR' reads the standard IDX files in DIR; "
            "'cifar10:DIR' the CIFAR-10 binary version. Example: ul2q-ref train --scheme ul2q "
            "--bits 2 --last-bits 8 --epochs 2 --out runs/ul2q2"
        ),
    )
    # Run-defining options default to None, so that one given with --resume, or one the
    # scheme would ignore, can be refused; TrainConfig supplies the defaults.
    parser.add_argument("--model", choices=MODEL_NAMES, help=f"default {defaults.model}")
    parser.add_argument("--scheme", choices=SCHEME_NAMES,
                        help="weight quantisation (default: float, none)")
    parser.add_argument("--bits", type=one_bit_width, metavar="K",
                        help="bit width of the quantised layers, 1 to 16 (ul2q, fixed_point, "
                             "clip; binary and ternary have fixed widths)")
    parser.add_argument("--last-bits", type=one_bit_width, metavar="K",
                        help="bit width of the last layer, e.g. 8 as in the paper's LeNet")
    parser.add_argument("--layer-bits", type=_layer_bits, action="append", default=None,
                        metavar="LAYER=K", help="bit width of one layer (repeatable)")
    parser.add_argument("--bits-plan", metavar="plan.json",
                        help="per-layer bit widths from 'ul2q-ref plan -o' (layers it does not "
                             "name get --bits, by default the plan's widest width)")
    parser.add_argument("--quantize-bias", action="store_const", const=True, default=None,
                        help="quantise biases too")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch", type=int, help=f"default {defaults.batch}")
    parser.add_argument("--lr", type=float, help=f"base learning rate (default {defaults.lr})")
    parser.add_argument("--momentum", type=float, help=f"in [0, 1) (default {defaults.momentum})")
    parser.add_argument("--weight-decay", type=float, help=f"default {defaults.weight_decay}")
    parser.add_argument("--lr-policy", choices=("fixed", "multistep", "inv"),
                        help=f"Caffe learning-rate policy (default {defaults.lr_policy})")
    parser.add_argument("--gamma", type=float,
                        help=f"inv coefficient or multistep factor (default {defaults.gamma})")
    parser.add_argument("--power", type=float, help=f"inv exponent (default {defaults.power})")
    parser.add_argument("--milestones", type=_milestones, metavar="E1,E2",
                        help="multistep: epochs at which the rate is multiplied by gamma")
    parser.add_argument("--data", help="mnist-small (default), mnist:DIR or cifar10:DIR")
    parser.add_argument("--train-limit", type=int, metavar="N",
                        help="use only the first N training images")
    parser.add_argument("--test-limit", type=int, metavar="N",
                        help="use only the first N test images")
    parser.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    parser.add_argument("--backend", choices=("auto", "fast", "reference"),
                        help="quantisation kernels (default auto)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="directory for checkpoint.npz and metrics.json (locked while "
                             "training)")
    parser.add_argument("--metrics-out", metavar="FILE", help="also write the metrics JSON here")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR (its saved configuration; only "
                             "--epochs, the new total, may be given)")
    parser.add_argument("--force", action="store_true",
                        help="start over even if RUN_DIR already holds a checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(run=run)


def given_options(args: argparse.Namespace) -> dict:
    """The run-defining options given on the command line (not left at their default)."""
    values = {name: getattr(args, name) for name in RUN_OPTIONS}
    return {name: value for name, value in values.items() if value is not None}


def check_scheme_options(options: dict) -> None:
    """Refuse options the chosen scheme would ignore (instead of ignoring them silently)."""
    scheme = options.get("scheme", "float")
    if scheme == "float":
        used = [name for name in ("bits", "last_bits", "layer_bits", "quantize_bias")
                if name in options]
        if used:
            raise CommandError(f"{_option(used[0])} has no effect with --scheme float (no "
                               "quantisation); drop it or choose a quantising --scheme")
    elif scheme in FIXED_BITS:
        if "bits" in options:
            raise CommandError(
                f"--scheme {scheme} has a fixed width of {FIXED_BITS[scheme]} bit"
                f"{'s' if FIXED_BITS[scheme] > 1 else ''}; drop --bits (--last-bits and "
                "--layer-bits give single layers another width, as fixed point)")
    elif "bits" not in options:
        raise CommandError(f"--scheme {scheme} needs --bits K")
    elif scheme == "clip" and (options["bits"] < 2 or options.get("last_bits", 2) < 2):
        raise CommandError("--scheme clip needs at least 2 bits (1 bit leaves only the code 0)")


def check_writable_file(path: str, option: str) -> None:
    """Refuse an output file that cannot be written, before any work is done."""
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{option} {path}: is a directory; name a file")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CommandError(f"{option} {path}: not writable")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {args.out}: exists and is not a directory")
    options = given_options(args)
    if args.bits_plan is not None:
        if args.resume:
            raise CommandError("--resume continues the run saved in "
                               f"{args.out} with its own configuration; --bits-plan cannot "
                               "change it (drop it)")
        options.update(_with_plan(args, dict(options.get("layer_bits", {}))))
    if args.resume:
        if options:
            name = next(iter(options))
            raise CommandError(f"--resume continues the run saved in {args.out} with its own "
                               f"configuration; {_option(name)} cannot change it (drop it; "
                               "only --epochs may be given)")
        if args.force:
            raise CommandError("--resume and --force contradict each other")
    else:
        check_scheme_options(options)
    has_checkpoint = (out / CHECKPOINT_NAME).exists()
    if args.resume and not has_checkpoint:
        raise CommandError(f"--resume: no {CHECKPOINT_NAME} in {args.out}")
    if has_checkpoint and not (args.resume or args.force):
        raise CommandError(
            f"--out {args.out} already holds a run; pass --resume to continue it or --force "
            "to start over"
        )
    parent = out.parent if str(out.parent) else Path(".")
    if not out.exists() and not parent.is_dir():
        raise CommandError(f"--out {args.out}: directory {parent} does not exist")
    if not os.access(out if out.exists() else parent, os.W_OK):
        raise CommandError(f"--out {args.out}: not writable")
    if args.metrics_out:
        check_writable_file(args.metrics_out, "--metrics-out")
    values = dict(options)
    if "layer_bits" in values:
        values["layer_bits"] = dict(values["layer_bits"])
    try:
        config = TrainConfig(epochs=args.epochs, **values)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None
    if not args.quiet:
        print(f"training {config.model} ({config.scheme}"
              f"{'' if config.bits is None else f', {config.bits} bits'}) on {config.data}; "
              f"writing {out}", file=sys.stderr)
    try:
        result = train(config, out_dir=out, resume=args.resume, progress=not args.quiet,
                       on_epoch=None if args.quiet else _report)
    except (TrainingDiverged, RunLocked) as error:
        raise CommandError(str(error)) from None
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    if args.metrics_out:
        write_metrics(args.metrics_out, result)
    layers = ", ".join(f"{name} {scheme}{'' if bits is None else f'/{bits}'}"
                       for name, (scheme, bits) in result.layers.items())
    print(f"layers: {layers}")
    print(f"final test accuracy: {100 * result.test_accuracy:.2f}% "
          f"({len(result.history)} epochs; checkpoint {out / CHECKPOINT_NAME})")
    return 0


def _with_plan(args: argparse.Namespace, layer_bits: dict[str, int]) -> dict:
    """``--bits-plan``: the plan's widths as --layer-bits overrides (explicit ones win), and
    --bits, if not given, the plan's widest width."""
    from ..weights import layer_name, read_plan

    if args.scheme not in ("ul2q", "fixed_point", "clip"):
        raise CommandError(f"--bits-plan needs a scheme with bit widths (ul2q, fixed_point, "
                           f"clip), not --scheme {args.scheme}")
    try:
        plan = {layer_name(name): bits for name, bits in read_plan(args.bits_plan).items()}
    except ValueError as error:
        raise CommandError(f"--bits-plan {error}") from None
    return {"layer_bits": {**plan, **layer_bits},
            "bits": args.bits if args.bits is not None else max(plan.values())}


def _report(metrics) -> None:
    print(json.dumps({"epoch": metrics.epoch, "train_loss": round(metrics.train_loss, 5),
                      "test_accuracy": metrics.test_accuracy,
                      "seconds": round(metrics.seconds, 2)}), file=sys.stderr)
