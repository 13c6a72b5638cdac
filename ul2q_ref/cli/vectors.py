"""``ul2q-ref vectors``: write the conformance vectors (a versioned suite) to a directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import CommandError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vectors",
        help="write the conformance vectors for checking other implementations",
        description=(
            "Write DIR/vectors.json (and DIR/data/*.npy for the large cases): named cases "
            "covering every bit width 1-16, float32 and float64, the exact, paper and caffe "
            "profiles, every comparison scheme and the edge cases (ties, whole-pipeline ties "
            "off the mean, clip edges, σ = 0, zero tensors, one and two elements, huge mean, "
            "subnormals, per-channel). Schema version 2 (version 1 is still read by 'check'). "
            "Deterministic: the same "
            "version always writes the same bytes. Check an implementation with "
            "'ul2q-ref check DIR'; the format is in docs/crosscheck.md."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory to write (created if missing)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing DIR/vectors.json")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..crosscheck.vectors import flag_counts, generate_cases, write_suite

    target = Path(args.out)
    if target.exists() and not target.is_dir():
        raise CommandError(f"{args.out}: exists and is not a directory")
    if (target / "vectors.json").exists() and not args.force:
        raise CommandError(f"{target / 'vectors.json'} exists; pass --force to overwrite it")
    if not target.parent.is_dir() and str(target.parent):
        raise CommandError(f"{args.out}: parent directory {target.parent} does not exist")
    cases = generate_cases()
    try:
        path = write_suite(target, cases)
    except OSError as error:
        raise CommandError(f"{args.out}: cannot write ({error.strerror or error})") from None
    counts = flag_counts(cases)
    schemes = ", ".join(f"{key.split(':')[1]} {n}" for key, n in counts.items()
                        if key.startswith("scheme:"))
    print(f"wrote {path}: {len(cases)} cases ({schemes})")
    return 0
