"""The JSON format of the conformance vectors: writing, loading, and the checker's requests.

``vectors.json`` is described by ``vectors.schema.json`` (shipped beside this module) and
docs/crosscheck.md; arrays of large cases live in ``DIR/data/*.npy``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import __version__
from .._atomic import write_atomic, write_text_atomic
from ..gaussian import PAPER_TABLE_I, optimal_lambda
from ..io import _npy_header as read_npy_header  # the one .npy header parser (io.py)
from ..io import open_regular, read_npy_bytes
from ..profiles.caffe import LAMBDA_TABLE as CAFFE_LAMBDA_TABLE
from . import steps
from .case import (
    _DTYPES,
    FORMAT,
    INLINE_LIMIT,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    Case,
)
from .catalogue import generate_cases
from .encoding import from_hex, to_decimal, to_hex

# --------------------------------------------------------------------------- JSON


def _floats(values: Any, dtype: str, decimal: bool = True) -> dict[str, list[str]]:
    record = {"hex": to_hex(values, dtype)}
    if decimal:
        record["decimal"] = to_decimal(values, dtype)
    return record


def _codes_json(case: Case) -> list[int | None]:
    return [int(code) if ok else None
            for code, ok in zip(case.codes.reshape(-1).tolist(),
                                case.defined.reshape(-1).tolist(), strict=True)]


def _task_fields(case: Case) -> dict[str, Any]:
    """What `case` asks for, as the vectors file and the request both state it.

    The scheme and profile, the bit width k, the channel axis (``None``: one (α, β) for
    the tensor), the float dtype and shape of w, and the dtype of α and β.
    """
    return {
        "scheme": case.scheme,
        "profile": case.profile,
        "bits": case.bits,
        "axis": case.axis,
        "dtype": case.dtype,
        "shape": list(case.weights.shape),
        "parameter_dtype": case.parameter_dtype,
    }


def case_to_json(case: Case, save_npy: Any | None = None) -> dict[str, Any]:
    """The JSON object of `case`; large arrays go through ``save_npy(name, array)``."""
    parameter = case.parameter_dtype
    save_large = save_npy if case.weights.size > INLINE_LIMIT else None
    record: dict[str, Any] = {
        "id": case.id,
        "comment": case.comment,
        "flags": case.flags,
        **_task_fields(case),
    }
    if save_large is not None:
        record["input"] = save_large(f"{case.id}.input.npy", case.weights)
    else:
        record["input"] = _floats(case.weights, case.dtype)
    if case.stats is None:
        record["stats"] = None
    else:
        stats: dict[str, Any] = {
            "alpha": _floats(case.stats.alpha, parameter),
            "beta": _floats(case.stats.beta, parameter),
        }
        if case.stats.threshold is not None:
            stats["threshold"] = _floats(case.stats.threshold, parameter)
        if case.stats.details:
            stats["details"] = {name: _floats(value, parameter)
                                for name, value in case.stats.details.items()}
        stats["tolerance_ulps"] = case.tolerance
        record["stats"] = stats
    encode: dict[str, Any] = {
        "alpha": _floats(case.encode_alpha, parameter),
        "beta": _floats(case.encode_beta, parameter),
    }
    if case.encode_threshold is not None:
        encode["threshold"] = _floats(case.encode_threshold, parameter)
    if save_large is not None:
        if not case.defined.all():
            raise ValueError(f"{case.id}: a large case cannot have undefined codes")
        encode["codes"] = save_large(f"{case.id}.codes.npy", case.codes.astype(np.int32))
        encode["output"] = save_large(f"{case.id}.output.npy", case.output)
    else:
        encode["codes"] = _codes_json(case)
        encode["output"] = _floats(case.output, case.dtype, decimal=False)
    record["encode"] = encode
    return record


def suite_header(cases: list[Case]) -> dict[str, Any]:
    """The top-level fields of ``vectors.json`` other than the cases."""
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "generator": "ul2q-ref",
        "generator_version": __version__,
        "description": (
            "Conformance vectors for μL2Q weight quantisation (Gong et al., IJCNN 2019) and "
            "its comparison schemes. Floats are IEEE 754 bit patterns in hex; codes are "
            "integers in C order of the input shape. See docs/crosscheck.md of ul2q-ref."
        ),
        "lambdas": {
            "exact": to_hex([optimal_lambda(k) for k in range(1, 17)], "float64"),
            "paper": to_hex([PAPER_TABLE_I[k][0] for k in range(1, 9)], "float64"),
            "caffe": to_hex(CAFFE_LAMBDA_TABLE, "float32"),
        },
        "case_count": len(cases),
    }


def render(cases: list[Case], save_npy: Any | None = None) -> str:
    """``vectors.json`` as text: the header indented, each case on one line."""
    header = suite_header(cases)
    lines = ["{"]
    for key, value in header.items():
        lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append(' "cases": [')
    bodies = [json.dumps(case_to_json(case, save_npy), ensure_ascii=False,
                         separators=(",", ":")) for case in cases]
    lines.append(",\n".join(f"  {body}" for body in bodies))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_suite(directory: str | os.PathLike[str], cases: list[Case] | None = None) -> Path:
    """Write the suite to `directory` (created if needed); return the path of vectors.json.

    Files are written to temporary names and renamed into place, so an interrupted run
    leaves either the old suite or the new one.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    cases = generate_cases() if cases is None else cases
    data = target / "data"
    written: dict[str, bytes] = {}

    def save_npy(name: str, array: np.ndarray) -> dict[str, str]:
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        content = buffer.getvalue()
        written[name] = content
        return {"npy": f"data/{name}", "sha256": hashlib.sha256(content).hexdigest()}

    text = render(cases, save_npy)
    if written:
        data.mkdir(exist_ok=True)
    for name, content in written.items():
        write_atomic(data / name, functools.partial(_write_bytes, content))
    path = target / "vectors.json"
    write_text_atomic(path, text)
    return path


def _write_bytes(content: bytes, handle: IO[bytes]) -> None:
    handle.write(content)


# --------------------------------------------------------------------------- loading


class SuiteError(ValueError):
    """A vectors directory that cannot be read: missing, malformed or tampered with."""


@dataclass
class Suite:
    """A loaded suite: its header fields and its cases."""

    directory: Path
    header: dict[str, Any]
    cases: list[Case]


def load_suite(directory: str | os.PathLike[str]) -> Suite:
    """Read ``DIR/vectors.json`` (and its ``.npy`` files, checking their SHA-256)."""
    root = Path(directory)
    path = root / "vectors.json" if root.is_dir() else root
    if not path.exists():
        raise SuiteError(f"{path}: no such file (write one with `ul2q-ref vectors --out DIR`)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SuiteError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SuiteError(f"{path}: not a ul2q-ref conformance suite (format {FORMAT!r})")
    if document.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        readable = " and ".join(str(version) for version in READABLE_SCHEMA_VERSIONS)
        raise SuiteError(f"{path}: schema version {document.get('schema_version')!r} is not "
                         f"supported (this checker reads versions {readable})")
    cases = []
    for index, record in enumerate(document.get("cases", [])):
        try:
            cases.append(case_from_json(record, path.parent))
        except (KeyError, TypeError, ValueError) as error:
            name = record.get("id", f"#{index}") if isinstance(record, dict) else f"#{index}"
            raise SuiteError(f"{path}: case {name}: {error}") from None
    header = {key: value for key, value in document.items() if key != "cases"}
    return Suite(path.parent, header, cases)


MAX_NPY_BYTES = 1 << 28
"""The largest array a case may keep in a ``.npy`` file (256 MiB); the suite's are < 64 KiB."""


def _load_npy(reference: dict[str, str], root: Path, shape: tuple[int, ...],
              dtype: str) -> np.ndarray:
    """Read the array `reference` names, refusing it before reading or hashing its data
    unless its header and size are those of a `dtype` array of the case's `shape`."""
    name = reference["npy"]
    file = (root / name).resolve()
    if root.resolve() not in file.parents:
        raise ValueError(f"{name}: outside the suite directory")
    expected_dtype = np.dtype(dtype)
    payload = math.prod(shape) * expected_dtype.itemsize
    if payload > MAX_NPY_BYTES:
        raise ValueError(f"{name}: the case declares {dtype} {list(shape)} ({payload} bytes), "
                         f"more than the {MAX_NPY_BYTES} a data file may hold")
    with open_regular(file) as handle:  # a FIFO or directory is refused, not waited on
        size = os.fstat(handle.fileno()).st_size
        found_shape, fortran, found_dtype = read_npy_header(handle, name)
        header = handle.tell()
        if (tuple(found_shape) != tuple(shape) or fortran
                or found_dtype.newbyteorder("=") != expected_dtype.newbyteorder("=")):
            raise ValueError(f"{name}: holds {found_dtype} {list(found_shape)}"
                             f"{' in Fortran order' if fortran else ''}, the case declares "
                             f"{dtype} {list(shape)}")
        if size != header + payload:
            raise ValueError(f"{name}: {size} bytes, but a {dtype} {list(shape)} array takes "
                             f"{header + payload} ({header} of header); refused unread")
        handle.seek(0)
        content = handle.read(size)
    if hashlib.sha256(content).hexdigest() != reference["sha256"]:
        raise ValueError(f"{name}: SHA-256 mismatch (file changed or corrupted)")
    return read_npy_bytes(content, name)  # header checked against the size


def _array(record: Any, dtype: str, root: Path,
           shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The values of a ``{"hex": …}`` record, or of a ``{"npy": …}`` one where the case
    declares its `shape` (the input, codes and ŵ; parameters are always inline)."""
    if isinstance(record, dict) and "npy" in record:
        if shape is None:
            raise ValueError(f"{record['npy']}: only the input, codes and output may be kept "
                             "in .npy files")
        return np.asarray(_load_npy(record, root, shape, dtype))
    return from_hex(record["hex"], dtype)


def case_from_json(record: dict[str, Any], root: Path) -> Case:
    """Rebuild a :class:`Case` from its JSON object (arrays resolved)."""
    dtype = record["dtype"]
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    shape = tuple(int(n) for n in record["shape"])
    if any(n < 0 for n in shape):
        raise ValueError(f"shape must not have negative lengths, got {list(shape)}")
    parameter = record["parameter_dtype"]
    weights = _array(record["input"], dtype, root, shape).astype(dtype).reshape(shape)
    stats = None
    tolerance = None
    if record["stats"] is not None:
        raw = record["stats"]
        threshold = _array(raw["threshold"], parameter, root) if "threshold" in raw else None
        details = {name: _array(value, parameter, root)
                   for name, value in raw.get("details", {}).items()}
        stats = steps.Statistics(_array(raw["alpha"], parameter, root).astype(np.float64),
                                 _array(raw["beta"], parameter, root).astype(np.float64),
                                 None if threshold is None else threshold.astype(np.float64),
                                 parameter, details)
        tolerance = raw["tolerance_ulps"]
    encode = record["encode"]
    threshold = encode.get("threshold")
    codes_record = encode["codes"]
    if isinstance(codes_record, dict):
        codes = np.asarray(_load_npy(codes_record, root, shape, "int32"),
                           dtype=np.int64).reshape(shape)
        defined = np.ones(shape, dtype=bool)
    else:
        defined = np.array([code is not None for code in codes_record], dtype=bool)
        codes = np.array([0 if code is None else int(code) for code in codes_record],
                         dtype=np.int64)
        codes, defined = codes.reshape(shape), defined.reshape(shape)
    output = _array(encode["output"], dtype, root, shape).astype(dtype).reshape(shape)
    steps.check_case_kind(record["scheme"], record["profile"])
    return Case(
        id=record["id"],
        comment=record["comment"],
        flags=list(record["flags"]),
        scheme=record["scheme"],
        profile=record["profile"],
        bits=int(record["bits"]),
        axis=record["axis"],
        weights=weights,
        stats=stats,
        tolerance=tolerance,
        encode_alpha=_array(encode["alpha"], parameter, root).astype(np.float64),
        encode_beta=_array(encode["beta"], parameter, root).astype(np.float64),
        encode_threshold=(None if threshold is None
                          else _array(threshold, parameter, root).astype(np.float64)),
        codes=codes,
        defined=defined,
        output=output,
    )


# --------------------------------------------------------------------------- protocol


def request_for(case: Case) -> dict[str, Any]:
    """The request an implementation receives for `case` (docs/crosscheck.md, "Protocol")."""
    parameter = case.parameter_dtype
    encode: dict[str, Any] = {
        "alpha": {"hex": to_hex(case.encode_alpha, parameter)},
        "beta": {"hex": to_hex(case.encode_beta, parameter)},
    }
    if case.encode_threshold is not None:
        encode["threshold"] = {"hex": to_hex(case.encode_threshold, parameter)}
    return {
        "id": case.id,
        **_task_fields(case),
        "input": {"hex": to_hex(case.weights, case.dtype)},
        "quantize": case.stats is not None,
        "encode": encode,
    }


def flag_counts(cases: list[Case]) -> dict[str, int]:
    """How many cases carry each flag, scheme and profile (for summaries and docs)."""
    counts: dict[str, int] = {}
    for case in cases:
        keys = [f"flag:{flag}" for flag in case.flags]
        keys.append(f"scheme:{case.scheme}")
        keys.append(f"profile:{case.profile}" if case.profile else "profile:-")
        keys.append(f"dtype:{case.dtype}")
        keys.append(f"bits:{case.bits}")
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


__all__ = [
    "Suite",
    "SuiteError",
    "case_from_json",
    "case_to_json",
    "flag_counts",
    "load_suite",
    "render",
    "request_for",
    "suite_header",
    "write_suite",
]
