"""Whole models: quantise every weight tensor to codes and code books, and decode them back.

This module owns the quantised-model file format, ``ul2q-ref/quantized-model-v1``
(:data:`QUANTIZED_MODEL_FORMAT`): its writer (:func:`quantize_model`) and its validating
reader (:func:`grouped_tensors`, which :func:`ul2q_ref.weights.read_model` uses), so that
what is written is what is read. The file is an ``.npz`` in the conventions of the trainer's
integer model (:mod:`ul2q_ref.nn.export`, the same layout): ``format``, ``source`` (the file
it came from), for every quantised tensor NAME the arrays of
:func:`ul2q_ref.io.quantized_arrays` (format ``ul2q-ref/quantized-v2``) as
``quantized/NAME/codes``, ``quantized/NAME/alpha``, …, and every other tensor unchanged as
``float/NAME``. Everything loads with ``numpy.load(path, allow_pickle=False)``; read back,
each quantised tensor is decoded, ŵ = α(q − ½) + β, and must be finite.

Both directions handle one tensor at a time: the writer reads, quantises and appends each
tensor before reading the next (:func:`ul2q_ref.io.npz_writer`), and the reader decodes a
tensor only when it is loaded. :func:`write_float_model` streams decoded tensors into a
``.safetensors`` or ``.npz`` file the same way.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import quantize
from .._atomic import atomic_path
from ..codebook import Quantized
from ..io import (
    DTYPES,
    ArrayInfo,
    FileFormatError,
    npz_writer,
    quantized_arrays,
    quantized_from_arrays,
    read_npz_member,
)
from .inspect import CHUNK, mean_square, quantization_error
from .tensors import (
    Loader,
    Model,
    ModelFileError,
    Tensor,
    converted,
    role_from_name,
    some_names,
)

QUANTIZED_MODEL_FORMAT = "ul2q-ref/quantized-model-v1"
"""The ``format`` of a whole model written by :func:`quantize_model`."""

SMALL_FIELD_BYTES = 1 << 16
"""A code-book field (α, β, bits, …) larger than this is refused without being read."""


def bits_for(tensors: Sequence[Tensor], bits: int | None = None,
             plan: Mapping[str, int] | None = None) -> dict[str, int]:
    """The bit width of each tensor (by tensor name): `bits` for all, or from a `plan`.

    A plan names layers (``conv1``) or tensors (``conv1.weight``); every selected tensor must
    be named, and every name must be a selected tensor (an error lists the first few
    offenders and their count).
    """
    if plan is None:
        if bits is None:
            raise ValueError("give --bits K or --plan plan.json")
        return {t.name: bits for t in tensors}
    widths = {}
    unnamed = []
    for tensor in tensors:
        width = plan.get(tensor.name, plan.get(tensor.layer))
        if width is None:
            unnamed.append(tensor.layer)
            continue
        widths[tensor.name] = int(width)
    if unnamed:
        raise ValueError(f"the plan names no width for layer {some_names(unnamed)} "
                         f"({len(unnamed)} selected layer(s) in all)")
    known = {name for t in tensors for name in (t.name, t.layer)}
    unknown = sorted(set(plan) - known)
    if unknown:
        raise ValueError(f"the plan names layers that are not selected weights: "
                         f"{some_names(unknown)} ({len(unknown)} in all)")
    return widths


def quantize_model(
    model: Model,
    tensors: Sequence[Tensor],
    widths: Mapping[str, int],
    output: str | os.PathLike[str],
    axis: int | None | Mapping[str, int | None] = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Quantise the `tensors` of `model` into the file `output`; per tensor its MSE and SQNR.

    Parameters
    ----------
    model : Model
        Every tensor of the file (the others are kept in float).
    tensors : sequence of Tensor
        The tensors to quantise.
    widths : mapping of str to int
        The bit width k of each tensor, by name.
    output : path
        The ``.npz`` to write (atomically; the module docstring's format).
    axis : int or mapping, optional
        None: one (α, β) per tensor; 0: per output channel (each tensor's own output-channel
        axis, :attr:`Tensor.channel_axis`); a mapping: that choice per tensor name, for
        every tensor of `tensors` (the file records each tensor's axis, so one file may mix
        per-channel and per-tensor tensors).
    progress : callable, optional
        Called with each quantised tensor's name before it is read.

    Returns
    -------
    list of dict
        ``name``, ``shape``, ``bits``, ``axis``, ``mse`` = mean((w − ŵ)²) and
        ``sqnr_db`` = 10 log10(mean(w²)/mse), one per quantised tensor.

    Raises
    ------
    ModelFileError
        Naming the file and the tensor, for a tensor that cannot be read or quantised (a
        NaN weight, a constant that cannot be represented, …). Nothing is written then.
    """
    chosen = {t.name for t in tensors}
    if isinstance(axis, Mapping):
        unnamed = sorted(chosen - set(axis))
        if unnamed:
            raise ValueError(f"axis names no choice for tensor {some_names(unnamed)}")
    rows = []
    with npz_writer(output) as add:
        add("format", np.array(QUANTIZED_MODEL_FORMAT))
        add("source", np.array(os.path.basename(model.path)))
        for tensor in model.tensors:
            if tensor.name not in chosen:
                add(f"float/{tensor.name}", tensor.load())
                continue
            if progress is not None:
                progress(tensor.name)
            tensor_axis = axis[tensor.name] if isinstance(axis, Mapping) else axis
            rows.append(_quantize_one(model.path, tensor, widths[tensor.name], tensor_axis,
                                      add))
    return rows


def _quantize_one(path: str, tensor: Tensor, bits: int, axis: int | None,
                  add: Callable[[str, Any], None]) -> dict[str, Any]:
    weights = tensor.load()
    channel = None if axis is None or weights.ndim < 2 else tensor.channel_axis
    try:
        quantized = quantize(weights, bits, axis=channel)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: tensor {tensor.name}: {error}") from None
    for key, value in quantized_arrays(quantized).items():
        add(f"quantized/{tensor.name}/{key}", value)
    mse = quantization_error(weights, quantized)
    signal = mean_square(weights)
    return {"name": tensor.name, "shape": list(weights.shape), "bits": bits, "axis": channel,
            "mse": mse, "sqnr_db": 10.0 * math.log10(signal / mse) if mse > 0 else math.inf}


# --------------------------------------------------------------------------- reading


def grouped_tensors(path: str, members: Sequence[ArrayInfo]) -> list[Tensor]:
    """The tensors of a quantised or integer model (``quantized/NAME/…`` and ``float/NAME``),
    in the file's order, each read (and decoded) only when loaded.

    The layout is checked here, before any tensor is loaded: ``float/`` members must be
    numeric, every ``quantized/NAME`` group needs ``codes`` and small code-book fields.
    Decoding validates the code book (:func:`ul2q_ref.io.quantized_from_arrays`) and the
    reconstruction must be finite; errors name the file and the member.
    """
    groups: dict[str, dict[str, ArrayInfo]] = {}
    order: list[tuple[str, str]] = []
    for info in members:
        if info.name.startswith("quantized/"):
            name, _, part = info.name[len("quantized/"):].rpartition("/")
            if not name:
                raise ModelFileError(f"{path}: member {info.name!r} is not "
                                     "quantized/NAME/FIELD")
            if name not in groups:
                groups[name] = {}
                order.append(("quantized", name))
            groups[name][part] = info
        elif info.name.startswith("float/"):
            if info.dtype.kind not in "biuf":
                raise ModelFileError(f"{path}: member {info.name!r} holds {info.dtype} values; "
                                     "expected numbers")
            order.append(("float", info.name[len("float/"):]))
    by_name = {info.name: info for info in members}
    tensors = []
    for kind, name in order:
        if kind == "float":
            info = by_name[f"float/{name}"]
            tensors.append(Tensor(name, role=role_from_name(name), shape=info.shape,
                                  dtype=info.dtype, loader=member_loader(path, info.name)))
        else:
            tensors.append(quantized_tensor(path, name, groups[name], f"quantized/{name}/"))
    return tensors


def member_loader(path: str, member: str) -> Loader:
    """A :class:`Tensor` loader reading member `member` of the ``.npz`` `path`."""
    def load(dtype: Any = None) -> np.ndarray:
        try:
            return converted(read_npz_member(path, member), dtype)
        except FileFormatError as error:
            raise ModelFileError(str(error)) from None
    return load


def quantized_tensor(path: str, name: str, fields: Mapping[str, ArrayInfo],
                     prefix: str) -> Tensor:
    """The lazy tensor NAME of the quantised tensor whose members are ``PREFIX + field``
    (``quantized/NAME/`` in a model, nothing in a single quantised tensor's file).

    The dtype and sizes are checked now; the code book is validated and decoded on load,
    and the reconstruction must be finite. Errors name the file and the member.
    """
    where = f"{path}: {prefix.rstrip('/') or name}"
    if "codes" not in fields:
        raise ModelFileError(f"{path}: member {prefix}codes is missing")
    large = [part for part, info in fields.items()
             if part != "codes" and info.dtype.itemsize * math.prod(info.shape)
             > SMALL_FIELD_BYTES]
    if large:
        raise ModelFileError(f"{path}: member {prefix}{large[0]} is too large for a code-book "
                             "field")
    dtype = np.dtype(np.float64)
    if "dtype" in fields:
        text = read_npz_member(path, f"{prefix}dtype")
        if text.shape != () or text.dtype.kind != "U" or str(text) not in DTYPES:
            raise ModelFileError(f"{path}: member {prefix}dtype must name float16, float32 or "
                                 "float64")
        dtype = np.dtype(str(text)).newbyteorder("=")

    def load(dtype: Any = None) -> np.ndarray:
        try:
            arrays = {part: read_npz_member(path, f"{prefix}{part}") for part in fields}
            decoded = decode_in_chunks(quantized_from_arrays(arrays, source=where))
        except (FileFormatError, TypeError, ValueError) as error:
            text = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelFileError(text if text.startswith(path) else f"{where}: {text}") \
                from None
        if not np.isfinite(decoded).all():
            count = int(decoded.size - np.count_nonzero(np.isfinite(decoded)))
            raise ModelFileError(f"{where}: decodes to {count} non-finite value(s) (α or β "
                                 "is NaN or infinite); refusing a tampered code book")
        return converted(decoded, dtype)  # rounded to its own dtype first, as stored

    return Tensor(name, role="weight", shape=fields["codes"].shape, dtype=dtype, loader=load)


def decode_in_chunks(quantized: Quantized, dtype: Any = None) -> np.ndarray:
    """``quantized.dequantize(dtype)``, decoded a few rows at a time into the result.

    Each value is decoded exactly as by the whole-tensor call (ŵ = α(q − z) + β in float64,
    rounded once), but the float64 intermediate is one chunk of about a million values,
    not a whole tensor. A profile's own decoder (``caffe``) decodes the whole tensor.
    """
    target = np.dtype(quantized.dtype if dtype is None else dtype)
    codes = quantized.codes
    if type(quantized) is not Quantized or codes.ndim == 0 or codes.size <= CHUNK:
        return quantized.dequantize(target)
    out = np.empty(codes.shape, dtype=target)
    step = max(1, CHUNK // max(1, codes.size // codes.shape[0]))
    for start in range(0, codes.shape[0], step):
        rows = slice(start, start + step)
        fields: dict[str, Any] = {"codes": codes[rows]}
        if quantized.axis == 0:
            fields.update(alpha=quantized.alpha[rows], beta=quantized.beta[rows])
        out[rows] = replace(quantized, **fields).dequantize(target)
    return out


# --------------------------------------------------------------------------- float files

_SAFETENSORS_DTYPES = {"f2": "F16", "f4": "F32", "f8": "F64", "i1": "I8", "i2": "I16",
                       "i4": "I32", "i8": "I64", "u1": "U8", "u2": "U16", "u4": "U32",
                       "u8": "U64", "b1": "BOOL"}


def write_float_model(path: str | os.PathLike[str], tensors: Sequence[Tensor]) -> int:
    """Write every tensor, loaded one at a time, as ``.safetensors`` or ``.npz`` (by suffix).

    Written atomically (:mod:`ul2q_ref._atomic`), mode from the umask; returns the number of
    tensors written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".npz":
        with npz_writer(target) as add:
            for tensor in tensors:
                add(tensor.name, tensor.load())
        return len(tensors)
    if suffix != ".safetensors":
        raise ModelFileError(f"{path}: write .safetensors or .npz, not {suffix or 'no suffix'}")
    header: dict[str, Any] = {}
    offset = 0
    for tensor in tensors:
        code = _SAFETENSORS_DTYPES.get(f"{tensor.dtype.kind}{tensor.dtype.itemsize}")
        if code is None:
            raise ModelFileError(f"{path}: tensor {tensor.name} is {tensor.dtype}, which "
                                 "safetensors cannot hold")
        size = tensor.size * tensor.dtype.itemsize
        header[tensor.name] = {"dtype": code, "shape": list(tensor.shape),
                               "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with atomic_path(target) as temporary, open(temporary, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)))
        handle.write(text)
        for tensor in tensors:
            # (np.asarray with order="C", not np.ascontiguousarray: that turns 0-d into 1-d)
            array = np.asarray(tensor.load(), dtype=tensor.dtype.newbyteorder("<"), order="C")
            if array.shape != tensor.shape:
                raise ModelFileError(f"{path}: tensor {tensor.name} changed shape while "
                                     "being read")
            handle.write(array.reshape(-1).view(np.uint8).data)
            del array  # before the next tensor is read: one tensor in memory at a time
    return len(tensors)


__all__ = ["QUANTIZED_MODEL_FORMAT", "bits_for", "decode_in_chunks", "grouped_tensors",
           "member_loader", "quantize_model", "quantized_tensor",
           "write_float_model"]
