"""``ul2q-ref check``: check an implementation's results against the conformance vectors."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import CommandError, int_at_least

if TYPE_CHECKING:
    from ..crosscheck.check import Provider


def _non_negative(text: str) -> int:
    return int_at_least(text, 0, "a whole number of ulps >= 0")


def _stats_ulps(text: str) -> int | str:
    return text if text in ("stated", "any") else _non_negative(text)


def _positive(text: str) -> int:
    return int_at_least(text, 1, "a whole number >= 1")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text}")
    return value


def _command(text: str) -> str:
    try:
        argv = shlex.split(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"cannot split {text!r} ({error})") from None
    if not argv:
        raise argparse.ArgumentTypeError("is empty; name the program to run")
    return text


MAX_VECTORS_BYTES = 1 << 30
"""The largest vectors.json the checker reads."""


def validate_vectors_file(directory: str) -> None:
    """Refuse a vectors.json that is not valid JSON or does not follow the shipped schema.

    Its ``data/*.npy`` files are checked against their cases' shapes when the suite is
    loaded, before any is read or hashed (:mod:`ul2q_ref.crosscheck.format`).
    """
    from ..crosscheck.results import parse_json
    from ..crosscheck.schema import SchemaError, ValidatorMissingError, validate

    root = Path(directory)
    path = root / "vectors.json" if root.is_dir() else root
    if not path.exists():
        return  # load_suite explains
    if not path.is_file():
        raise CommandError(f"{path}: not a regular file")
    if path.stat().st_size > MAX_VECTORS_BYTES:
        raise CommandError(f"{path}: larger than {MAX_VECTORS_BYTES} bytes")
    try:
        document = parse_json(path.read_text(encoding="utf-8"))
        validate(document)
    except SchemaError as error:
        raise CommandError(f"{path}: does not follow vectors.schema.json: {error}") from None
    except ValidatorMissingError as error:
        raise CommandError(str(error)) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CommandError(f"{path}: not a readable JSON file ({error})") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check an implementation's results against the conformance vectors",
        description=(
            "Compare another μL2Q implementation with the vectors in DIR (written by "
            "'ul2q-ref vectors'). Give its results as a file (--results), or a command that "
            "answers requests (--command; JSON lines on stdin and stdout, see "
            "docs/crosscheck.md), or check this package itself (--self). Prints PASS/FAIL per "
            "case, details for failures (differences, α, β and λ_eff on both sides, up to "
            "three elements, the pattern of the difference), failures grouped by flag and by "
            "the aspect they point to (names as in 'ul2q-ref diagnose'), and finally "
            "'N passed, N failed'. Exit status 1 if any case fails or none passes."
        ),
    )
    parser.add_argument("directory", metavar="DIR", nargs="?", help="the vectors directory")
    parser.add_argument("--print-adapter-template", action="store_true",
                        help="print a single-file adapter (standard library and NumPy only) "
                             "that answers --command ... --batch requests, and exit")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--results", metavar="RESULTS.json",
                        help="the implementation's results (format in docs/crosscheck.md)")
    source.add_argument("--command", metavar="CMD", type=_command,
                        help="run CMD (split like a shell would, run without a shell) per "
                             "case: one JSON request line on stdin, one JSON result on "
                             "stdout; every process CMD starts is killed when it ends "
                             "(on Linux also those that left its session)")
    source.add_argument("--self", action="store_true", dest="check_self",
                        help="check this package itself (in process)")
    parser.add_argument("--batch", action="store_true",
                        help="with --command: run CMD once, all requests as lines on stdin")
    parser.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="with --command: per case (default 60), or for the whole batch "
                             "(default 600)")
    parser.add_argument("--deadline", type=_seconds, default=None, metavar="SECONDS",
                        help="with --command (one run per case): stop starting cases after "
                             "this many seconds in all (default 3600); the rest fail")
    parser.add_argument("--give-up-after", type=_positive, default=None, metavar="N",
                        help="with --command (one run per case): stop after N consecutive "
                             "timeouts (default 3); the cases left fail as not run")
    parser.add_argument("--max-line-bytes", type=_positive, default=None, metavar="BYTES",
                        help="with --command: the longest result line accepted (default "
                             "16 MiB); a longer one fails its case, unparsed")
    parser.add_argument("--tolerance-ulps", type=_non_negative, default=0, metavar="N",
                        help="allow ŵ to differ by N ulps, and codes where the input is "
                             "within N ulps of a cell boundary (default 0: bit-exact)")
    parser.add_argument("--stats-ulps", type=_stats_ulps, default=None,
                        metavar="N|stated|any",
                        help="allowed ulps on α, β (and Δ); 'stated' uses each case's "
                             "tolerance_ulps; 'any' does not compare them (the whole pipeline "
                             "is then checked with the implementation's own α, β) (default: "
                             "the --tolerance-ulps value)")
    parser.add_argument("--scheme", action="append", default=[], metavar="NAME",
                        help="only cases of this scheme (repeatable)")
    parser.add_argument("--profile", action="append", default=[], metavar="NAME",
                        help="only μL2Q cases of this profile (repeatable)")
    parser.add_argument("--select", action="append", default=[], metavar="GLOB",
                        help="only cases whose id matches this glob (repeatable)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only failures and the summary")
    parser.set_defaults(run=run)


def select_provider(args: argparse.Namespace, *, deadline: float, give_up_after: int,
                    max_line: int) -> Provider:
    """The source of results that ``--self``, ``--results``, ``--command [--batch]`` name.

    ``--self`` answers from the reference; ``--results`` reads a results file; ``--command``
    runs the command once per case (``--timeout`` per case, 60 s by default, `deadline` for
    all, giving up after `give_up_after` timeouts in a row) or, with ``--batch``, once for
    all cases (``--timeout``, 600 s by default). A result line may have `max_line` bytes.
    """
    from ..crosscheck import check

    if args.check_self:
        return check.self_provider
    if args.results:
        try:
            return check.results_provider(args.results)
        except check.CheckError as error:
            raise CommandError(str(error)) from None
    if args.batch:
        return check.batch_provider(args.command, timeout=args.timeout or 600.0,
                                    max_line=max_line)
    return check.command_provider(args.command, timeout=args.timeout or 60.0,
                                  deadline=deadline, give_up_after=give_up_after,
                                  max_line=max_line)


def run(args: argparse.Namespace) -> int:
    from ..crosscheck import check
    from ..crosscheck.vectors import SuiteError, load_suite

    if args.print_adapter_template:
        from ..crosscheck.adapters import template_text

        sys.stdout.write(template_text())
        return 0
    if args.directory is None:
        raise CommandError("the following arguments are required: DIR")
    if not (args.results or args.command or args.check_self):
        raise CommandError("one of the arguments --results --command --self is required")
    if args.batch and not args.command:
        raise CommandError("--batch needs --command")
    if args.timeout is not None and not args.command:
        raise CommandError("--timeout needs --command")
    if args.deadline is not None and (not args.command or args.batch):
        raise CommandError("--deadline needs --command without --batch (use --timeout)")
    if args.give_up_after is not None and (not args.command or args.batch):
        raise CommandError("--give-up-after needs --command without --batch")
    if args.max_line_bytes is not None and not args.command:
        raise CommandError("--max-line-bytes needs --command")
    max_line = args.max_line_bytes or check.MAX_LINE_BYTES
    validate_vectors_file(args.directory)
    try:
        suite = load_suite(args.directory)
    except SuiteError as error:
        raise CommandError(str(error)) from None
    cases = check.select_cases(suite.cases, schemes=args.scheme, profiles=args.profile,
                               patterns=args.select)
    if not cases:
        raise CommandError("no case matches the --scheme/--profile/--select filters")
    provider = select_provider(args, deadline=args.deadline or check.DEFAULT_DEADLINE,
                               give_up_after=args.give_up_after or check.GIVE_UP_AFTER,
                               max_line=max_line)
    options = check.Options(args.tolerance_ulps, args.stats_ulps)
    try:
        report = check.check_suite(cases, provider, options)
    except check.CheckError as error:
        raise CommandError(str(error)) from None
    sys.stdout.write(report.render(quiet=args.quiet) + "\n")
    return 0 if report.failed == 0 and report.passed > 0 else 1
