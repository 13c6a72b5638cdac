"""``ul2q-ref train``: train a small CNN with μL2Q (or another scheme) on the CPU."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..nn.models import MODEL_NAMES
from ..nn.qat import SCHEME_NAMES
from ..nn.train import CHECKPOINT_NAME, TrainConfig, train, write_metrics
from ._common import CommandError


def _layer_bits(text: str) -> tuple[str, int]:
    name, _, bits = text.partition("=")
    try:
        return name, int(bits)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAYER=K such as fc2=8, got {text!r}") from None


def _milestones(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs such as 5,8, got {text!r}"
        ) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train a LeNet-5-class model with μL2Q quantisation-aware training",
        description=(
            "Train a small CNN in NumPy on the CPU. Quantised layers keep full-precision "
            "shadow weights; each forward pass uses their quantisation, and the gradient with "
            "respect to the quantised weights updates the shadow weights (straight-through). "
            "A checkpoint and metrics.json are written to --out after every epoch."
        ),
        epilog=(
            "Data: 'mnist-small' is the embedded MNIST subset (first 20,000 training images, "
            "all 10,000 test images); 'mnist:DIR' reads the standard IDX files in DIR; "
            "'cifar10:DIR' the CIFAR-10 binary version. Example: ul2q-ref train --scheme ul2q "
            "--bits 2 --last-bits 8 --epochs 2 --out runs/ul2q2"
        ),
    )
    parser.add_argument("--model", choices=MODEL_NAMES, default=defaults.model)
    parser.add_argument("--scheme", choices=SCHEME_NAMES, default=defaults.scheme,
                        help="weight quantisation (default: float, none)")
    parser.add_argument("--bits", type=int, metavar="K",
                        help="bit width of the quantised layers (ul2q, fixed_point, clip)")
    parser.add_argument("--last-bits", type=int, metavar="K",
                        help="bit width of the last layer, e.g. 8 as in the paper's LeNet")
    parser.add_argument("--layer-bits", type=_layer_bits, action="append", default=[],
                        metavar="LAYER=K", help="bit width of one layer (repeatable)")
    parser.add_argument("--bits-plan", metavar="plan.json",
                        help="per-layer bit widths from 'ul2q-ref plan -o' (layers it does not "
                             "name get --bits, by default the plan's widest width)")
    parser.add_argument("--quantize-bias", action="store_true", help="quantise biases too")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="base learning rate")
    parser.add_argument("--momentum", type=float, default=defaults.momentum)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--lr-policy", choices=("fixed", "multistep", "inv"),
                        default=defaults.lr_policy, help="Caffe learning-rate policy")
    parser.add_argument("--gamma", type=float, default=defaults.gamma,
                        help="inv coefficient or multistep factor")
    parser.add_argument("--power", type=float, default=defaults.power, help="inv exponent")
    parser.add_argument("--milestones", type=_milestones, default=(), metavar="E1,E2",
                        help="multistep: epochs at which the rate is multiplied by gamma")
    parser.add_argument("--data", default=defaults.data,
                        help="mnist-small (default), mnist:DIR or cifar10:DIR")
    parser.add_argument("--train-limit", type=int, metavar="N",
                        help="use only the first N training images")
    parser.add_argument("--test-limit", type=int, metavar="N",
                        help="use only the first N test images")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--backend", choices=("auto", "fast", "reference"),
                        default=defaults.backend, help="quantisation kernels")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="directory for checkpoint.npz and metrics.json")
    parser.add_argument("--metrics-out", metavar="FILE", help="also write the metrics JSON here")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR (its saved configuration; --epochs "
                             "sets the new total)")
    parser.add_argument("--force", action="store_true",
                        help="start over even if RUN_DIR already holds a checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {args.out}: exists and is not a directory")
    has_checkpoint = (out / CHECKPOINT_NAME).exists()
    if args.resume and not has_checkpoint:
        raise CommandError(f"--resume: no {CHECKPOINT_NAME} in {args.out}")
    if has_checkpoint and not (args.resume or args.force):
        raise CommandError(
            f"--out {args.out} already holds a run; pass --resume to continue it or --force "
            "to start over"
        )
    layer_bits, bits = dict(args.layer_bits), args.bits
    if args.bits_plan is not None:
        layer_bits, bits = _with_plan(args, layer_bits)
    try:
        config = TrainConfig(
            model=args.model, scheme=args.scheme, bits=bits, last_bits=args.last_bits,
            layer_bits=layer_bits, quantize_bias=args.quantize_bias,
            epochs=args.epochs, batch=args.batch, lr=args.lr, momentum=args.momentum,
            weight_decay=args.weight_decay, lr_policy=args.lr_policy, gamma=args.gamma,
            power=args.power, milestones=args.milestones, data=args.data,
            train_limit=args.train_limit, test_limit=args.test_limit, seed=args.seed,
            backend=args.backend,
        )
        if not args.quiet:
            print(f"training {config.model} ({config.scheme}"
                  f"{'' if config.bits is None else f', {config.bits} bits'}) on {config.data}; "
                  f"writing {out}", file=sys.stderr)
        result = train(config, out_dir=out, resume=args.resume, progress=not args.quiet,
                       on_epoch=None if args.quiet else _report)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        raise CommandError(str(error)) from None
    if args.metrics_out:
        write_metrics(args.metrics_out, result)
    layers = ", ".join(f"{name} {scheme}{'' if bits is None else f'/{bits}'}"
                       for name, (scheme, bits) in result.layers.items())
    print(f"layers: {layers}")
    print(f"final test accuracy: {100 * result.test_accuracy:.2f}% "
          f"({len(result.history)} epochs; checkpoint {out / CHECKPOINT_NAME})")
    return 0


def _with_plan(args: argparse.Namespace, layer_bits: dict[str, int]) -> tuple[dict, int]:
    """``--bits-plan``: the plan's widths as --layer-bits overrides (explicit ones win)."""
    from ..weights import layer_name, read_plan

    if args.scheme not in ("ul2q", "fixed_point", "clip"):
        raise CommandError(f"--bits-plan needs a scheme with bit widths (ul2q, fixed_point, "
                           f"clip), not --scheme {args.scheme}")
    try:
        plan = {layer_name(name): bits for name, bits in read_plan(args.bits_plan).items()}
    except ValueError as error:
        raise CommandError(f"--bits-plan {error}") from None
    return {**plan, **layer_bits}, args.bits if args.bits is not None else max(plan.values())


def _report(metrics) -> None:
    print(json.dumps({"epoch": metrics.epoch, "train_loss": round(metrics.train_loss, 5),
                      "test_accuracy": metrics.test_accuracy,
                      "seconds": round(metrics.seconds, 2)}), file=sys.stderr)
