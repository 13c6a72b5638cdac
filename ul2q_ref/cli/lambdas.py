"""``ul2q-ref lambdas``: the exact optimal steps λ_k* beside the paper's Table I."""

from __future__ import annotations

import argparse
import json

from .. import lambda_table
from ._common import bit_widths


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lambdas",
        help="print the exact optimal step λ_k* and its loss for each bit width",
        description=(
            "Print the exact optimal μL2Q step λ_k* (the root of dL/dλ for φ ~ N(0, 1)) and the "
            "expected L2 loss L(λ_k*) for each bit width k, beside the paper's Table I (k ≤ 8) "
            "and the extra loss the published λ costs, in percent."
        ),
    )
    parser.add_argument(
        "--bits", type=bit_widths, default=list(range(1, 17)), metavar="LIST",
        help="bit widths: K, A-B or a comma-separated list (default: 1-16)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = lambda_table(args.bits)
    if args.json:
        print(json.dumps([row._asdict() for row in rows], indent=2))
        return 0
    print(f"{'k':>2}  {'exact λ_k*':>20}  {'loss L(λ_k*)':>22}  {'paper λ':>7}  "
          f"{'paper loss':>10}  {'paper λ excess loss':>19}")
    for row in rows:
        paper = (f"{row.paper_lam:7.4f}  {row.paper_loss:10.4f}  "
                 f"{row.paper_excess_percent:18.4f}%") if row.paper_lam is not None else (
                 f"{'-':>7}  {'-':>10}  {'-':>19}")
        print(f"{row.bits:>2}  {row.lam:20.17f}  {row.loss:22.16e}  {paper}")
    return 0
