"""The model form of ``ul2q-ref quantize``: every weight tensor of a model file."""

from __future__ import annotations

import argparse

from ..weights import ModelFileError, bits_for, quantize_model, read_plan
from ._common import CommandError, check_output
from ._models import load, progress, table


def run_model(args: argparse.Namespace) -> int:
    if (args.bits is None) == (args.plan is None):
        raise CommandError("give exactly one of --bits K and --plan plan.json")
    if args.axis not in (None, 0):
        raise CommandError(f"--axis {args.axis}: a model is quantised per tensor (no --axis) "
                           "or per output channel (--axis 0)")
    if not args.output.lower().endswith(".npz"):
        raise CommandError(f"-o {args.output}: a quantised model is written as .npz")
    check_output(args.output, args.force)
    try:
        plan = read_plan(args.plan) if args.plan is not None else None
    except ValueError as error:
        raise CommandError(str(error)) from None
    model, tensors = load(args, args.input)
    try:
        widths = bits_for(tensors, args.bits, plan)
    except ValueError as error:
        raise CommandError(f"{args.plan or args.input}: {error}") from None
    try:
        rows = quantize_model(model, tensors, widths, args.output, axis=args.axis,
                              progress=progress(not getattr(args, "quiet", True)))
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    except OSError as error:
        raise CommandError(f"{args.output}: cannot be written ({error.strerror or error})") \
            from None
    where = "per tensor" if args.axis is None else "per output channel"
    total = sum(t.size for t in tensors)
    bits = sum(widths[t.name] * t.size for t in tensors)
    print(f"quantised {len(rows)} weight tensors of {args.input} ({total:,} weights, "
          f"{bits / total:.4g} bits per weight) with μL2Q, {where}; "
          f"{len(model.tensors) - len(rows)} other tensors kept in float")
    body = [[r["name"], "x".join(map(str, r["shape"])), str(r["bits"]), f"{r['mse']:.6e}",
             f"{r['sqnr_db']:.2f}"] for r in rows]
    print(table(["tensor", "shape", "bits", "MSE", "SQNR dB"], body))
    print(f"wrote {args.output}")
    return 0
