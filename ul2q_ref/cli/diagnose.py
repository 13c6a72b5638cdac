"""``ul2q-ref diagnose``: name every way an implementation departs from the definition."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ._common import CommandError, check_output

SCHEMES = ("ul2q", "binary", "ternary", "fixed_point", "clip")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from .check import _command, _seconds

    parser = subparsers.add_parser(
        "diagnose",
        help="diagnose an implementation: which aspects deviate from the definition, and how",
        description=(
            "Send probes designed to separate each aspect of μL2Q (λ, σ estimator, ε, zero "
            "point, tie rule, precision, per channel, code range, σ = 0, subnormals, "
            "decoding) or of a comparison scheme to an implementation, fit a model of it and "
            "print one line per aspect (matches / deviates / not determinable, the fitted "
            "value, the smallest input that shows it), the closest known implementation and "
            "a summary (docs/crosscheck.md, \"Diagnosis\"). Exit status 1 if any aspect "
            "deviates."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--command", metavar="CMD", type=_command,
                        help="run CMD (split like a shell would, run without a shell): JSON "
                             "request lines on stdin, result lines on stdout")
    source.add_argument("--results", metavar="RESULTS.json",
                        help="answers to the probes written by --requests (adaptive probes "
                             "are then left out)")
    source.add_argument("--self", action="store_true", dest="check_self",
                        help="diagnose this package itself (in process)")
    source.add_argument("--requests", metavar="OUT.jsonl",
                        help="write the first round's probe requests (one JSON line each) "
                             "and stop, to answer them offline for --results")
    parser.add_argument("--batch", action="store_true",
                        help="with --command: run CMD once per round, all requests as lines")
    parser.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="with --command: per request (default 60), or per round with "
                             "--batch (default 600)")
    parser.add_argument("--scheme", choices=SCHEMES, default="ul2q",
                        help="the scheme to diagnose (default ul2q)")
    parser.add_argument("--json", metavar="OUT", dest="json_out",
                        help="also write the diagnosis as JSON (diagnosis.schema.json)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --json or --requests file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..crosscheck import check
    from ..crosscheck.diagnosis import diagnose, first_round_requests
    from ..crosscheck.diagnosis.render import render, write_json

    if args.batch and not args.command:
        raise CommandError("--batch needs --command")
    if args.timeout is not None and not args.command:
        raise CommandError("--timeout needs --command")
    for path in (args.json_out, args.requests):
        if path:
            check_output(path, args.force)
    if args.requests:
        lines = [json.dumps(request, separators=(",", ":"))
                 for request in first_round_requests(args.scheme)]
        from ..crosscheck.diagnosis.render import write_text

        write_text("\n".join(lines) + "\n", args.requests)
        print(f"wrote {len(lines)} probe requests to {args.requests}", file=sys.stderr)
        return 0
    from .check import select_provider

    provider = select_provider(args, deadline=check.DEFAULT_DEADLINE,
                               give_up_after=check.GIVE_UP_AFTER, max_line=check.MAX_LINE_BYTES)
    start = time.monotonic()
    try:
        diagnosis = diagnose(provider, scheme=args.scheme, progress=True)
    except check.CheckError as error:
        raise CommandError(str(error)) from None
    print(f"diagnose: {diagnosis.probes} probes in {diagnosis.rounds} round(s), "
          f"{time.monotonic() - start:.1f} s", file=sys.stderr)
    sys.stdout.write(render(diagnosis) + "\n")
    if args.json_out:
        write_json(diagnosis, args.json_out)
    return 1 if diagnosis.deviations else 0
