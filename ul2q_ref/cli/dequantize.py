"""``ul2q-ref dequantize``: a quantised model back to float weights (safetensors or .npz)."""

from __future__ import annotations

import argparse

from ..weights import ModelFileError, read_model, write_float_model
from ._common import CommandError, check_output

QUANTISED_KINDS = ("ul2q-ref quantized model", "ul2q-ref integer model",
                   "ul2q-ref quantized tensor")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dequantize",
        help="decode a quantised model (or tensor) to float weights",
        description=(
            "Decode every quantised tensor of IN.npz (written by 'ul2q-ref quantize', "
            "'ul2q-ref export', or a single quantised tensor), ŵ = α(q − z) + β, keep the "
            "other tensors as they are, and write all of them by name to OUT.safetensors or "
            "OUT.npz for use elsewhere."
        ),
    )
    parser.add_argument("input", metavar="IN.npz", help="a quantised model or tensor")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="OUT.safetensors or OUT.npz")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.output.lower().endswith((".safetensors", ".npz")):
        raise CommandError(f"-o {args.output}: name a .safetensors or .npz file")
    if not args.input.lower().endswith(".npz"):
        raise CommandError(f"{args.input}: expected a quantised .npz file")
    check_output(args.output, args.force)
    try:
        model = read_model(args.input)
        if model.format not in QUANTISED_KINDS:
            raise CommandError(f"{args.input}: holds no quantised tensors ({model.format})")
        count = write_float_model(args.output, model.tensors)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    except OSError as error:
        raise CommandError(f"{args.output}: cannot be written ({error.strerror or error})") \
            from None
    print(f"wrote {args.output}: {count} tensors")
    return 0
