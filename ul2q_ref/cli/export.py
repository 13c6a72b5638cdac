"""``ul2q-ref export``: write a trained model's integer form (codes + code books)."""

from __future__ import annotations

import argparse

from ..nn.export import export
from ._common import check_output, check_suffix


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a training checkpoint as an integer model",
        description=(
            "Write the integer model of a training checkpoint: for every quantised layer the "
            "codes (int8/int16/int32) and their code book (α, β, z, bits, scheme), plus the "
            "parameters that stay float (unquantised biases, BatchNorm). Plain .npz arrays, "
            "no pickles. 'ul2q-ref evaluate' runs it."
        ),
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a run's checkpoint.npz")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.npz")
    parser.add_argument("--force", action="store_true", help="overwrite MODEL.npz")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_suffix(args.output, ".npz", "-o")
    check_output(args.output, args.force)
    summary = export(args.checkpoint, args.output)  # errors name the checkpoint or output
    for name, (scheme, bits) in summary["layers"].items():
        print(f"{name}: {scheme}" + ("" if bits is None else f", {bits} bits"))
    print(f"wrote {args.output}")
    return 0
