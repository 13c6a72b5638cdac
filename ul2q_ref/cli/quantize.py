"""``ul2q-ref quantize``: quantise a ``.npy`` tensor or a whole model; report the error."""

from __future__ import annotations

import argparse

import numpy as np

from .. import quantize
from ..io import save_quantized
from ._common import CommandError, check_output, check_suffix, load_npy, one_bit_width
from ._models import add_selection


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="quantise a .npy tensor or a whole model with μL2Q and save the codes",
        description=(
            "Quantise the array in IN.npy with k-bit μL2Q (β = μ, α = λ_k* σ) and write the "
            "codes, α, β and bits to OUT.npz (plain arrays, no pickles; see ul2q_ref.io). "
            "Given a model file instead (.npz, .safetensors, .pt, .onnx), quantise every "
            "weight tensor (--bits K, or per layer with --plan plan.json from 'ul2q-ref "
            "plan'), keep the other tensors in float, and write one OUT.npz "
            "(docs/models.md). Prints the mean squared error and the SQNR in dB."
        ),
    )
    parser.add_argument("input", metavar="IN", help="the tensor (.npy) or model to quantise")
    parser.add_argument("--bits", type=one_bit_width, metavar="K", help="bit width k, 1 to 16")
    parser.add_argument("--plan", metavar="plan.json",
                        help="a model's per-layer widths, from 'ul2q-ref plan -o'")
    add_selection(parser)
    parser.add_argument("--axis", type=int, default=None, metavar="N",
                        help="channel axis for per-channel α and β (default: whole tensor)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.npz",
                        help="where to write the codes and code book")
    parser.add_argument("--force", action="store_true", help="overwrite OUT.npz if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_suffix(args.output, ".npz", "-o")
    if args.plan is not None or not args.input.lower().endswith(".npy"):
        from ._quantize_model import run_model

        return run_model(args)
    if args.bits is None:
        raise CommandError("--bits K is required")
    if args.include or args.exclude:
        raise CommandError("--include and --exclude select tensors of a model file, not of "
                           f"a single .npy tensor ({args.input})")
    weights = load_npy(args.input)
    check_output(args.output, args.force)
    try:
        quantized = quantize(weights, args.bits, axis=args.axis)
    except (TypeError, ValueError) as error:
        raise CommandError(f"{args.input}: {error}") from None
    save_quantized(args.output, quantized)
    original = weights.astype(np.float64)
    difference = original - quantized.dequantize(np.float64)
    mse = float(np.mean(difference * difference))
    signal = float(np.mean(original * original))
    sqnr = 10.0 * np.log10(signal / mse) if mse > 0 else float("inf")
    where = "per tensor" if quantized.axis is None else f"per channel along axis {quantized.axis}"
    print(f"quantised {args.input} {weights.shape} {weights.dtype} to {args.bits}-bit μL2Q "
          f"({where}), λ_k* = {quantized.lam:.10f}")
    print(f"wrote {args.output}: codes {quantized.codes.dtype}, α, β")
    print(f"MSE  = {mse:.6e}")
    print(f"SQNR = {sqnr:.2f} dB")
    return 0
