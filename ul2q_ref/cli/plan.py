"""``ul2q-ref plan``: the per-layer bit widths that minimise a model's μL2Q error in a budget."""

from __future__ import annotations

import argparse

from ..weights import capacity_bits, plan_bits
from ..weights.plan import PLAN_FORMAT, check_pins
from ._common import CommandError, bit_widths, check_output, int_at_least, layer_bit_width
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


def _positive_int(text: str) -> int:
    return int_at_least(text, 1, "a positive number of bytes")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="choose per-layer bit widths for a budget (exact optimum)",
        description=(
            "Choose a bit width k_l for every weight tensor of MODEL that minimises the total "
            "squared error Σ n_l σ_l² L_l(k_l) subject to Σ n_l k_l ≤ B Σ n_l (the exact "
            "optimum, a dynamic programme over the Pareto frontier). L_l is the layer's actual "
            "μL2Q loss, or with --gaussian the Gaussian prediction L(λ_k*). Prints the plan "
            "against uniform widths; -o writes plan.json for quantize --plan and "
            "train --bits-plan."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget", metavar="B", help="average bits per weight, e.g. 2.5")
    budget.add_argument("--size", type=_positive_int, metavar="BYTES",
                        help="total size of the codes in bytes")
    parser.add_argument("--bits", type=bit_widths, default=list(range(1, 9)), metavar="LIST",
                        help="the widths a layer may get: A-B or a list (default: 1-8)")
    parser.add_argument("--pin", type=layer_bit_width, action="append", default=[],
                        metavar="LAYER=K",
                        help="fix one layer's width, e.g. --pin fc2=8 (repeatable)")
    parser.add_argument("--gaussian", action="store_true",
                        help="plan with the Gaussian prediction instead of the actual loss")
    parser.add_argument("--axis", type=int, choices=(0,), default=None,
                        help="0: plan for per-channel (α, β), as quantize --axis 0")
    add_selection(parser)
    parser.add_argument("-o", "--output", metavar="plan.json", help="write the plan as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite plan.json")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_jobs(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.output:
        check_output(args.output, args.force)
    model, tensors = load(args, args.model)
    pins = dict(args.pin)
    total = sum(tensor.size for tensor in tensors)
    try:  # every option checked before any layer is measured
        check_pins(pins, {n for t in tensors for n in (t.name, t.layer)},
                   [t.layer for t in tensors])
        capacity = capacity_bits(total, args.budget, args.size)
    except ValueError as error:
        raise CommandError(str(error)) from None
    widths = sorted(set(args.bits) | set(pins.values()))
    rows = measure(args.model, tensors, widths, per_channel=args.axis is not None,
                   best_step=False, progress=progress(not args.quiet), jobs=args.jobs,
                   shape_statistics=False)
    try:
        result = plan_bits(rows, capacity, args.bits, pins=pins, gaussian=args.gaussian,
                           per_channel=args.axis is not None)
    except ValueError as error:
        raise CommandError(str(error)) from None
    objective = "gaussian" if args.gaussian else "actual"
    where = "per tensor" if args.axis is None else "per channel"
    print(f"{args.model}: {len(rows)} weight tensors, {total:,} weights; budget {capacity:,} "
          f"bits ({capacity / total:.4g} per weight); error model: "
          f"{'Gaussian L(λ_k*)' if args.gaussian else 'actual μL2Q loss'}, {where}")
    print()
    body = []
    for row in rows:
        bits = result["layers"][row["layer"]]
        layer_error = _error(row, bits, args)
        share = layer_error / result["error"] if result["error"] > 0 else 0.0
        pinned = " (pinned)" if row["layer"] in pins or row["name"] in pins else ""
        body.append([row["layer"], f"{row['n']:,}", f"{bits}{pinned}", f"{100 * share:.1f}%"])
    print(table(["layer", "n", "bits", "share of error"], body))
    print()
    print(f"plan: {result['bits_total']:,} bits ({result['bits_per_weight']:.4f} per weight), "
          f"normalised error Σ n σ² L / Σ n σ² = {result['normalised_error']:.5f}")
    print()
    uniform = [[f"{u['bits']}", f"{u['bits']}", f"{u['normalised_error']:.5f}",
                f"{result['error'] / u['error']:.3f}" if u["error"] > 0 else "-"]
               for u in result["uniform"]]
    print("uniform widths (every layer at k; no pins):")
    print(table(["k", "bits/weight", "normalised error", "plan / uniform"], uniform))
    if args.output:
        document = {"format": PLAN_FORMAT, "source": args.model, "objective": objective,
                    "axis": args.axis, "budget": args.budget, "size": args.size,
                    "pins": pins, **result}
        write_json(args.output, document)
        print(f"\nwrote {args.output}")
    return 0


def _error(row: dict, bits: int, args: argparse.Namespace) -> float:
    from ..weights.plan import layer_errors

    return layer_errors(row, gaussian=args.gaussian, per_channel=args.axis is not None)[bits]
