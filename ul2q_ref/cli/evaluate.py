"""``ul2q-ref evaluate``: test accuracy of a checkpoint or an exported integer model."""

from __future__ import annotations

import argparse

from ..io import FileFormatError, read_npz_member
from ..nn.export import evaluate_path
from ._common import CommandError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="print the test accuracy of a checkpoint or an integer model",
        description=(
            "Evaluate a training checkpoint (its quantised forward pass) or an integer model "
            "written by 'ul2q-ref export' on the test set of the data it was trained on "
            "(or --data), and print the accuracy and the data used."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="checkpoint.npz or an exported MODEL.npz")
    parser.add_argument("--data", help="evaluate on this data instead (mnist-small, mnist:DIR, "
                                       "cifar10:DIR)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = evaluate_path(args.path, data=args.data)  # errors name the file or the data
    except FileFormatError:
        if _is_quantized_model(args.path):
            raise CommandError(
                f"{args.path}: a quantised model file of 'ul2q-ref quantize' (codes, no "
                "architecture), which 'dequantize' and 'inspect' read; evaluate reads a "
                "training checkpoint or an integer model of 'ul2q-ref export'") from None
        raise
    config = result["config"]
    print(f"{args.path}: {result['kind']} of {config.model}, scheme {config.scheme}"
          + ("" if config.bits is None else f", {config.bits} bits"))
    print(result["dataset"].describe())
    print(f"evaluated on {result['test_images']} test images")
    print(f"test accuracy: {100 * result['accuracy']:.2f}%")
    return 0


def _is_quantized_model(path: str) -> bool:
    """Whether `path` is a quantised model file (``weights.model.QUANTIZED_MODEL_FORMAT``)."""
    from ..weights.model import QUANTIZED_MODEL_FORMAT  # only on this error path

    try:
        found = read_npz_member(path, "format")
    except (FileFormatError, OSError, KeyError):
        return False
    return found.shape == () and str(found) == QUANTIZED_MODEL_FORMAT
