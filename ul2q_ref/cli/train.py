"""``ul2q-ref train``: train a small CNN with μL2Q (or another scheme) on the CPU."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..io import FileFormatError
from ..nn.data import load_dataset
from ..nn.models import MODEL_NAMES, build_model
from ..nn.qat import FIXED_BITS, SCHEME_NAMES
from ..nn.train import (
    CHECKPOINT_NAME,
    RunLocked,
    TrainConfig,
    TrainingDiverged,
    epochs_to_run,
    load_checkpoint,
    option_flag,
    train,
    write_metrics,
)
from ._common import CommandError, layer_bit_width, one_bit_width


def _milestones(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs such as 5,8, got {text!r}"
        ) from None


RUN_OPTIONS = ("model", "scheme", "bits", "last_bits", "layer_bits", "quantize_bias", "batch",
               "lr", "momentum", "weight_decay", "lr_policy", "gamma", "power", "milestones",
               "max_iterations", "data", "train_limit", "test_limit", "seed", "backend")
"""Options that define a run: saved in its checkpoint; with --resume they may be given only
with their saved values."""


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
    parser.add_argument("--layer-bits", type=layer_bit_width, action="append", default=None,
                        metavar="LAYER=K", help="bit width of one layer (repeatable)")
    parser.add_argument("--bits-plan", metavar="plan.json",
                        help="per-layer bit widths from 'ul2q-ref plan -o' (layers it does not "
                             "name get --bits, by default the plan's widest width)")
    parser.add_argument("--quantize-bias", action="store_const", const=True, default=None,
                        help="quantise biases too")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help=f"epochs to train (default {defaults.epochs}); with --resume the "
                             "new total (default: the saved run's)")
    parser.add_argument("--iterations", dest="max_iterations", type=int, metavar="N",
                        help="stop after N SGD iterations (Caffe's max_iter), inside the last "
                             "epoch if it falls there")
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
                        help="directory for checkpoint.npz and metrics.json (created with its "
                             "parents once the options are valid; locked while training)")
    parser.add_argument("--metrics-out", metavar="FILE", help="also write the metrics JSON here")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR with its saved configuration (other "
                             "options may be given only with their saved values; --epochs is "
                             "the new total)")
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
            raise CommandError(f"{option_flag(used[0])} has no effect with --scheme float (no "
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
    check_run_directory(out, args.out)
    options = given_options(args)
    if args.bits_plan is not None:
        scheme = args.scheme
        if scheme is None and args.resume and (out / CHECKPOINT_NAME).exists():
            scheme = _saved_run(out)[0].scheme
        options.update(_with_plan(args, scheme, dict(options.get("layer_bits", {}))))
    if args.metrics_out:
        check_writable_file(args.metrics_out, "--metrics-out")
    if args.resume:
        config, done = _resumed_config(args, out, options)
    else:
        config, done = _new_config(args, out, options), 0
    dataset = _load_data(config.data)
    _check_layers(args, config, dataset)
    if args.resume:
        _check_epochs_left(args, config, done, dataset)
    if not args.quiet:
        print(f"training {config.model} ({config.scheme}"
              f"{'' if config.bits is None else f', {config.bits} bits'}) on {config.data}; "
              f"writing {out}", file=sys.stderr)
    try:
        result = train(config, out_dir=out, resume=args.resume, progress=not args.quiet,
                       dataset=dataset, on_epoch=None if args.quiet else _report)
    except (TrainingDiverged, RunLocked) as error:
        raise CommandError(str(error)) from None
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    if args.metrics_out:
        write_metrics(args.metrics_out, result)
    layers = ", ".join(f"{name} {scheme}{'' if bits is None else f'/{bits}'}"
                       for name, (scheme, bits) in result.layers.items())
    print(f"layers: {layers}")
    epochs = len(result.history)
    print(f"final test accuracy: {100 * result.test_accuracy:.2f}% "
          f"({epochs} epoch{'' if epochs == 1 else 's'}; checkpoint {out / CHECKPOINT_NAME})")
    return 0


def check_run_directory(out: Path, text: str) -> None:
    """Refuse a ``--out`` that cannot become a run directory (nothing is created here: the
    trainer creates it, and any missing parents, once every option is valid)."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {text}: exists and is not a directory")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CommandError(f"--out {text}: {existing} is not a directory")
    if not os.access(existing, os.W_OK):
        raise CommandError(f"--out {text}: {existing} is not writable")


def _saved_run(out: Path) -> tuple[TrainConfig, int]:
    """The configuration and finished epochs of the checkpoint in `out`."""
    try:
        state = load_checkpoint(out / CHECKPOINT_NAME)
    except FileFormatError as error:
        raise CommandError(str(error)) from None
    return state["config"], state["epoch"]


def differences(options: dict, saved: TrainConfig) -> list[str]:
    """Every given run-defining option whose value differs from `saved`'s, as
    ``--flag GIVEN (saved: SAVED)``."""
    found = []
    for name, value in options.items():
        saved_value = getattr(saved, name)
        if name == "layer_bits":
            value = dict(value)
        elif name == "milestones":
            value = tuple(float(m) for m in value)
        if value != saved_value:
            found.append(f"{option_flag(name)} {_shown(value)} (saved: {_shown(saved_value)})")
    return found


def _shown(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    if isinstance(value, tuple):
        return ",".join(f"{m:g}" for m in value) or "none"
    return "none" if value is None else str(value)


def _resumed_config(args: argparse.Namespace, out: Path,
                    options: dict) -> tuple[TrainConfig, int]:
    """``--resume``: the saved configuration with the new total of epochs; given options
    must equal the saved ones (all that differ are named at once)."""
    if args.force:
        raise CommandError("--resume and --force contradict each other")
    if not (out / CHECKPOINT_NAME).exists():
        raise CommandError(f"--resume: no {CHECKPOINT_NAME} in {args.out}")
    saved, done = _saved_run(out)
    differing = differences(options, saved)
    if differing:
        raise CommandError(
            f"--resume continues the run saved in {args.out} with its own configuration, "
            f"and {len(differing)} option{'s' if len(differing) > 1 else ''} differ from it: "
            f"{'; '.join(differing)}. Drop them (or give the saved values), or train a new "
            "run with another --out or --force")
    epochs = args.epochs if args.epochs is not None else saved.epochs
    try:
        return replace(saved, epochs=epochs), done
    except ValueError as error:
        raise CommandError(str(error)) from None


def _new_config(args: argparse.Namespace, out: Path, options: dict) -> TrainConfig:
    """A new run's configuration; an existing run in `out` needs --resume or --force."""
    check_scheme_options(options)
    values = dict(options)
    if "layer_bits" in values:
        values["layer_bits"] = dict(values["layer_bits"])
    if args.epochs is not None:
        values["epochs"] = args.epochs
    try:
        config = TrainConfig(**values)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None
    if (out / CHECKPOINT_NAME).exists() and not args.force:
        saved, done = _saved_run(out)
        differing = differences({name: getattr(config, name) for name in RUN_OPTIONS}, saved)
        if differing:
            raise CommandError(
                f"--out {args.out} already holds a run of another configuration "
                f"({'; '.join(differing)}); pass --force to replace it, or choose another "
                "--out")
        raise CommandError(
            f"--out {args.out} already holds this run ({done} of {saved.epochs} epochs "
            "trained); pass --resume to continue it or --force to start over")
    return config


def _load_data(spec: str):
    """The run's data, loaded before anything is created (errors name ``--data``)."""
    try:
        return load_dataset(spec)
    except (FileNotFoundError, NotADirectoryError) as error:
        raise CommandError(f"--data {spec}: {error}") from None
    except ValueError as error:
        text = str(error)
        raise CommandError(text if text.startswith("--data") else f"--data {spec}: {text}"
                           ) from None


def _check_layers(args: argparse.Namespace, config: TrainConfig, dataset) -> None:
    """Layer names of --layer-bits and --bits-plan exist in the model; --last-bits does not
    contradict a width they give the last layer."""
    model = build_model(config.model, np.random.default_rng(0),
                        in_channels=dataset.image_shape[0], num_classes=dataset.num_classes,
                        input_size=dataset.image_shape[1:])
    names = [name for name, _ in model.quantizable_layers()]
    unknown = sorted(set(config.layer_bits) - set(names))
    if unknown:
        source = f"--bits-plan {args.bits_plan}" if args.bits_plan else "--layer-bits"
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more"
                                           if len(unknown) > 5 else "")
        raise CommandError(f"{source} names layers that {config.model} does not have: "
                           f"{shown} (its quantisable layers: {', '.join(names)})")
    last = names[-1]
    if config.last_bits is not None and last in config.layer_bits and \
            config.layer_bits[last] != config.last_bits:
        source = (f"--layer-bits {last}={config.layer_bits[last]}"
                  if last in dict(args.layer_bits or ()) else f"--bits-plan {args.bits_plan}")
        raise CommandError(
            f"--last-bits {config.last_bits} and {source} give the last layer {last} "
            f"different widths ({config.last_bits} and {config.layer_bits[last]}); drop one")


def _check_epochs_left(args: argparse.Namespace, config: TrainConfig, done: int,
                       dataset) -> None:
    """``--resume`` on a run that has nothing left to train is an error, not a no-op."""
    train_images = len(dataset.train_labels)
    if config.train_limit is not None:
        train_images = min(train_images, config.train_limit)
    total = epochs_to_run(config, -(-train_images // config.batch))
    if done < total:
        return
    if args.epochs is not None and args.epochs < done:
        raise CommandError(f"--resume --epochs {args.epochs}: the run in {args.out} has "
                           f"already trained {done} epochs; --epochs is the new total, so "
                           f"give more than {done} to train it further")
    limit = (f"; its --iterations {config.max_iterations} ends it there"
             if total < config.epochs else "")
    raise CommandError(f"--resume: the run in {args.out} is finished ({done} of {total} "
                       f"epochs trained{limit}); give --epochs N with N > {done} to train "
                       "it further")


def _with_plan(args: argparse.Namespace, scheme: str | None,
               layer_bits: dict[str, int]) -> dict:
    """``--bits-plan``: the plan's widths as --layer-bits overrides (explicit ones win), and
    --bits, if not given, the plan's widest width."""
    from ..weights import layer_name, read_plan

    if scheme not in ("ul2q", "fixed_point", "clip"):
        raise CommandError(f"--bits-plan needs a scheme with bit widths (ul2q, fixed_point, "
                           f"clip), not --scheme {scheme or 'float'}")
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
