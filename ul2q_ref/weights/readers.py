"""Model files in, weight tensors out: ``.npz``/``.npy``, safetensors, PyTorch and ONNX.

:func:`read_model` returns every tensor of a model file as a :class:`Tensor` (name, array,
role, output-channel axis), in the file's order; :func:`select_weights` picks the ones that
μL2Q quantises. The default is **conv and linear weights**: floating-point tensors with at
least two dimensions whose role is ``"weight"``. The role comes from the file:

* ONNX: from the nodes that consume each initializer (input 1 of Conv, ConvTranspose, Gemm
  and MatMul is a weight, input 2 of Conv and Gemm a bias, the inputs of the normalisation
  operators are ``"norm"``);
* state dicts, safetensors and ``.npz``: from the name; a tensor called ``…weight`` (or
  ``…kernel``) is a weight, ``…bias`` a bias (a 1-D ``weight``, e.g. BatchNorm's γ or a PReLU
  slope, is not conv or linear and is left out by the ndim rule).

``--include``/``--exclude`` patterns (:func:`fnmatch.fnmatch`, on the tensor name) change
the selection: with include patterns, exactly the floating-point tensors that match one are
selected; exclude patterns then remove tensors.

ONNX weights are found where exporters put them: initializers, ``Constant`` nodes (``value``
and the ``value_float(s)``/``value_int(s)`` forms; paddle2onnx and older tf2onnx write every
weight so), and behind ``Identity``, ``Cast`` and ``DequantizeLinear`` nodes, whose input takes
the role of the slot their output feeds. bfloat16 and float16 weights read as float32 and
float16; strings and other non-numeric tensors are skipped (never pickled, never written).

Readers never unpickle: ``.npy``/``.npz`` through :mod:`ul2q_ref.io` (the package's one
reader of them, with its limits), PyTorch files only with ``torch.load(weights_only=True)``.
Sizes are checked against the file before anything is allocated (safetensors offsets, ONNX
external data against the declared size, zip members against their compression ratio,
expanded PyTorch tensors against their storage), and every error is one
:class:`ModelFileError` line naming the file and, where there is one, the tensor.

**One tensor at a time.** :func:`read_model` reads a file's index (headers, offsets, the
ONNX graph without external data, a memory-mapped PyTorch state dict); a tensor's values are
read when :meth:`Tensor.load` is called and are not kept, so the commands hold one tensor in
memory whatever the model's size.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .._json import JSONLimitError, loads_bounded
from ..io import (
    MAX_MEMBER_BYTES,
    MAX_RATIO,
    READABLE_FORMATS,
    FileFormatError,
    check_zip_members,
    npy_info,
    npz_members,
    open_regular,
    read_into,
    read_npy,
    read_npz_member,
)
from .model import QUANTIZED_MODEL_FORMAT, grouped_tensors, member_loader, quantized_tensor
from .tensors import (
    ROLES,
    Loader,
    MissingPackageError,
    Model,
    ModelFileError,
    Tensor,
    converted,
    is_default_weight,
    layer_name,
    role_from_name,
    select_weights,
    some_names,
)

MAX_TENSOR_BYTES = MAX_MEMBER_BYTES
"""The largest tensor a reader accepts (the limit of :mod:`ul2q_ref.io`, 16 GiB)."""

MAX_HEADER_BYTES = 100 << 20
"""The largest safetensors header read (100 MiB)."""

NUMERIC_KINDS = "biuf"
"""The NumPy dtype kinds a model tensor may have (booleans, integers, floats)."""


def read_model(path: str | os.PathLike[str]) -> Model:
    """Index every tensor of a model file (values read on :meth:`Tensor.load`).

    The format comes from the suffix: ``.npz`` (the project's arrays, quantised tensors,
    checkpoints, integer models and quantised models, or any archive of arrays), ``.npy``,
    ``.safetensors``, ``.pt``/``.pth``/``.bin``/``.ckpt`` (PyTorch) and ``.onnx``.
    """
    file = Path(path)
    if not file.exists():
        raise ModelFileError(f"{path}: no such file")
    if not file.is_file():
        raise ModelFileError(f"{path}: not a regular file")
    suffix = file.suffix.lower()
    readers = {".npz": _read_npz, ".npy": _read_npy, ".safetensors": _read_safetensors,
               ".pt": _read_torch, ".pth": _read_torch, ".bin": _read_torch,
               ".ckpt": _read_torch, ".onnx": _read_onnx}
    if suffix not in readers:
        raise ModelFileError(
            f"{path}: unknown model format {suffix or '(no suffix)'}; expected .npz, .npy, "
            ".safetensors, .pt/.pth/.bin/.ckpt (PyTorch) or .onnx"
        )
    try:
        fmt, tensors = readers[suffix](file)
    except FileFormatError as error:
        raise ModelFileError(str(error)) from None
    return Model(path=str(path), format=fmt, tensors=tuple(tensors))


# --- NumPy ---------------------------------------------------------------------------------

def _read_npy(file: Path) -> tuple[str, list[Tensor]]:
    info = npy_info(file)
    if info.dtype.kind not in NUMERIC_KINDS:
        raise ModelFileError(f"{file}: holds {info.dtype} values; expected a numeric array")

    def load(dtype: Any = None) -> np.ndarray:
        try:
            return converted(read_npy(file), dtype)
        except FileFormatError as error:
            raise ModelFileError(str(error)) from None

    role = "weight" if len(info.shape) >= 2 else "other"
    return "npy", [Tensor(file.stem, role=role, shape=info.shape, dtype=info.dtype,
                          loader=load)]


def _read_npz(file: Path) -> tuple[str, list[Tensor]]:
    path = str(file)
    members = npz_members(file)
    kind = _format_field(file, members)
    if kind in READABLE_FORMATS:
        fields = {info.name: info for info in members}
        return "ul2q-ref quantized tensor", [quantized_tensor(path, file.stem, fields, "")]
    if kind == QUANTIZED_MODEL_FORMAT:
        return "ul2q-ref quantized model", grouped_tensors(path, members)
    if kind:
        from ..nn.export import EXPORT_FORMAT
        from ..nn.train import CHECKPOINT_FORMAT

        if kind == EXPORT_FORMAT:
            return "ul2q-ref integer model", grouped_tensors(path, members)
        if kind == CHECKPOINT_FORMAT:
            return "ul2q-ref checkpoint", _member_tensors(path, members, "model/")
        known = [*READABLE_FORMATS, QUANTIZED_MODEL_FORMAT, EXPORT_FORMAT, CHECKPOINT_FORMAT]
        raise ModelFileError(f"{file}: unknown ul2q-ref file format {kind[:80]!r} (this "
                             f"version reads {', '.join(known)})")
    return "npz arrays", _member_tensors(path, members, "")


def _format_field(file: Path, members: list[Any]) -> str:
    """The ``format`` member of a project file, '' for a plain archive of arrays."""
    info = next((m for m in members if m.name == "format"), None)
    if info is None or info.dtype.kind != "U" or info.shape != ():
        return ""
    if info.dtype.itemsize > 4096:
        raise ModelFileError(f"{file}: member 'format' is a string of {info.dtype.itemsize} "
                             "bytes; not a format name")
    return str(read_npz_member(file, "format"))


def _member_tensors(path: str, members: list[Any], prefix: str) -> list[Tensor]:
    """Every numeric member under `prefix` as a lazy tensor (text fields are not tensors)."""
    tensors = []
    for info in members:
        if not info.name.startswith(prefix) or info.dtype.kind not in NUMERIC_KINDS:
            continue
        name = info.name[len(prefix):]
        tensors.append(Tensor(name, role=role_from_name(name), shape=info.shape,
                              dtype=info.dtype, loader=member_loader(path, info.name)))
    return tensors


# --- safetensors ---------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<f4", "I8": "i1",
                       "I16": "<i2", "I32": "<i4", "I64": "<i8", "U8": "u1", "U16": "<u2",
                       "U32": "<u4", "U64": "<u8", "BOOL": "?"}
"""safetensors dtypes NumPy can hold, and the dtype each reads as (BF16 as float32)."""

_SAFETENSORS_ITEMSIZE = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I8": 1, "I16": 2, "I32": 4,
                         "I64": 8, "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1}


def _read_safetensors(file: Path) -> tuple[str, list[Tensor]]:
    size = file.stat().st_size
    with open_regular(file) as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{file}: not a safetensors file (shorter than its header)")
        (header_size,) = struct.unpack("<Q", head)
        if header_size > min(size - 8, MAX_HEADER_BYTES):
            raise ModelFileError(
                f"{file}: not a safetensors file (its header claims {header_size} bytes)")
        text = handle.read(header_size)
    try:
        header = loads_bounded(text, f"{file}: safetensors header", max_depth=4,
                               max_bytes=MAX_HEADER_BYTES)
    except JSONLimitError as error:
        raise ModelFileError(str(error)) from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{file}: not a safetensors file (its header is not a JSON object)")
    start = 8 + header_size
    data_size = size - start
    tensors = []
    entries = sorted(((name, entry) for name, entry in header.items()
                      if name != "__metadata__"),
                     key=lambda item: _offsets(file, item[0], item[1], data_size)[0])
    for name, entry in entries:
        low, high = _offsets(file, name, entry, data_size)
        code, shape = entry.get("dtype"), entry.get("shape")
        if not isinstance(shape, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise ModelFileError(f"{file}: tensor {name}: bad shape {str(shape)[:80]}")
        if code not in _SAFETENSORS_DTYPES:
            continue  # float8 and other types NumPy cannot hold: not tensors to measure
        expected = math.prod(shape) * _SAFETENSORS_ITEMSIZE[code]
        if expected != high - low:
            raise ModelFileError(f"{file}: tensor {name}: {code} {shape} needs {expected} "
                                 f"bytes, its data offsets span {high - low}")
        tensors.append(Tensor(name, role=role_from_name(name), shape=shape,
                              dtype=_SAFETENSORS_DTYPES[code],
                              loader=_safetensors_loader(file, name, code, shape,
                                                         start + low)))
    return "safetensors", tensors


def _offsets(file: Path, name: str, entry: Any, data_size: int) -> tuple[int, int]:
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise ModelFileError(f"{file}: tensor {name}: data offsets outside the file")
    return offsets[0], offsets[1]


def _safetensors_loader(file: Path, name: str, code: str, shape: list[int],
                        position: int) -> Loader:
    stored = np.dtype("<u2") if code == "BF16" else np.dtype(_SAFETENSORS_DTYPES[code])

    def load(dtype: Any = None) -> np.ndarray:
        return _read_at(file, name, position, tuple(shape), stored, code == "BF16",
                        dtype).reshape(shape)
    return load


def _bfloat16_values(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns as float32 (NumPy has no bfloat16: they are float32's top half)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _read_at(file: Path, name: str, position: int, shape: tuple[int, ...], stored: np.dtype,
             bfloat16: bool, dtype: Any = None) -> np.ndarray:
    """The values at byte `position` of `file` (`stored` layout), read into one new array.

    The result has `dtype` (default: float32 for bfloat16, else `stored`); a conversion is
    done slice by slice into the result, so the memory is the result and one slice.
    """
    count = math.prod(shape)
    natural = np.dtype(np.float32) if bfloat16 else stored.newbyteorder("=")
    target = natural if dtype is None else np.dtype(dtype)
    out = np.empty(count, dtype=target)
    step = 1 << 20
    with open_regular(file) as handle:
        handle.seek(position)
        if target == stored and not bfloat16:
            _fill(handle, out.view(np.uint8).data, file, name)
            return out
        buffer = np.empty(min(step, count), dtype=stored)
        for start in range(0, count, step):
            part = buffer[:min(step, count - start)]
            _fill(handle, part.view(np.uint8).data, file, name)
            out[start:start + part.size] = _bfloat16_values(part) if bfloat16 else part
    return out


def _fill(handle: Any, view: memoryview, file: Path, name: str) -> None:
    try:
        read_into(handle, view, f"{file}: tensor {name}")
    except FileFormatError as error:
        raise ModelFileError(str(error)) from None


# --- PyTorch -------------------------------------------------------------------------------

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")


def _read_torch(file: Path) -> tuple[str, list[Tensor]]:
    archive = zipfile.is_zipfile(file)
    if archive:
        check_zip_members(file)  # a zip bomb is refused before torch inflates it
    torch = _optional("torch", "torch", file)
    try:  # a zip archive is memory-mapped: tensors are read when used
        with warnings.catch_warnings():  # torch's deprecation notes: not the user's concern
            warnings.simplefilter("ignore")
            loaded = torch.load(str(file), map_location="cpu", weights_only=True,
                                mmap=archive)
    except Exception as error:  # noqa: BLE001 - torch raises many types for bad files
        text = _first_line(error)
        if "weights only" in text.lower() or "weights_only" in text:
            text = "it holds Python objects beyond tensors, which are never unpickled"
        raise ModelFileError(f"{file}: not a readable PyTorch file ({text})") from None
    state = _find_state_dict(loaded, torch)
    if state is None:
        raise ModelFileError(f"{file}: holds no state dict (no mapping of names to tensors)")
    tensors = []
    for name, value in state.items():
        dtype = _torch_tensor_dtype(file, str(name), value, torch)
        if dtype is None:
            continue
        tensors.append(Tensor(str(name), role=role_from_name(str(name)),
                              shape=tuple(value.shape), dtype=dtype,
                              loader=_torch_loader(value, dtype, torch)))
    return "PyTorch state dict", tensors


def _torch_tensor_dtype(file: Path, name: str, value: Any, torch: Any) -> np.dtype | None:
    """The NumPy dtype `value` reads as, after refusing what cannot be read safely (one
    line naming the file and the tensor); None for a tensor NumPy cannot hold (complex)."""
    where = f"{file}: tensor {name}"
    if value.is_meta:
        raise ModelFileError(f"{where}: is a meta tensor (a shape without values); save the "
                             "materialised model")
    if value.layout != torch.strided:
        raise ModelFileError(f"{where}: has the {str(value.layout).removeprefix('torch.')} "
                             "layout; save it dense (tensor.to_dense())")
    if value.is_quantized:
        raise ModelFileError(f"{where}: is a quantised PyTorch tensor "
                             f"({str(value.dtype).removeprefix('torch.')}); save it "
                             "dequantised (tensor.dequantize())")
    if value.is_complex():
        return None
    if value.is_floating_point() and value.dtype not in (torch.float16, torch.float32,
                                                         torch.float64):
        dtype = np.dtype(np.float32)  # bfloat16 and float8: NumPy has no such dtype
    else:
        dtype = np.dtype(str(value.dtype).removeprefix("torch."))
    materialised = value.numel() * dtype.itemsize
    stored = value.untyped_storage().nbytes()
    if materialised > max(MAX_RATIO * stored, 1 << 20) or materialised > MAX_TENSOR_BYTES:
        raise ModelFileError(f"{where}: expands {stored} bytes of storage to {materialised} "
                             "bytes (an expanded or strided view); refused, save it with "
                             "tensor.contiguous()")
    return dtype


def _torch_loader(value: Any, dtype: np.dtype, torch: Any) -> Loader:
    def load(wanted: Any = None) -> np.ndarray:
        tensor = value.detach()
        if tensor.dtype.is_floating_point and dtype == np.float32 and \
                tensor.dtype != torch.float32:
            tensor = tensor.float()
        return np.array(tensor.numpy(), dtype=wanted, copy=True)
    return load


def _find_state_dict(loaded: Any, torch: Any, depth: int = 0) -> dict[str, Any] | None:
    """The mapping of names to tensors in a loaded PyTorch file (nested one or two deep)."""
    if not isinstance(loaded, dict) or depth > 2:
        return None
    tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if tensors and len(tensors) >= len(loaded) / 2:
        return tensors
    for key in _STATE_DICT_KEYS:
        found = _find_state_dict(loaded.get(key), torch, depth + 1)
        if found:
            return found
    return tensors or None


# --- ONNX ----------------------------------------------------------------------------------

_WEIGHT_INPUTS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}
_BIAS_INPUTS = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2}
_NORM_OPS = ("BatchNormalization", "LayerNormalization", "InstanceNormalization",
             "GroupNormalization")
_PASS_THROUGH = ("Identity", "Cast", "DequantizeLinear")
"""Nodes whose input 0 is the weight their output is (a copy, a cast, a dequantisation)."""

_ONNX_DTYPES = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?",
                10: "<f2", 11: "<f8", 12: "<u4", 13: "<u8", 16: "<f4"}
"""ONNX TensorProto data types NumPy can hold, and the dtype each reads as (16, bfloat16,
as float32). Strings (8), complex, float8 and 4-bit types are skipped."""

_BFLOAT16 = 16
_FLOAT16 = 10


def _read_onnx(file: Path) -> tuple[str, list[Tensor]]:
    onnx = _optional("onnx", "onnx", file)
    try:
        model = onnx.load(str(file), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises its own errors
        raise ModelFileError(f"{file}: not a readable ONNX model ({_first_line(error)})") from None
    graph = model.graph
    roles = _onnx_roles(graph)
    sources: list[tuple[str, Any]] = [(t.name, t) for t in graph.initializer]
    named = {name for name, _ in sources}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output \
                and node.output[0] not in named:
            found = _constant_value(file, node, onnx)
            if found is not None:
                sources.append((node.output[0], found))
                named.add(node.output[0])
    tensors = []
    for name, proto in sources:
        tensor = _onnx_tensor(file, name, proto, roles.get(name, ("other", 0)))
        if tensor is not None:
            tensors.append(tensor)
    return "ONNX", tensors


def _onnx_roles(graph: Any) -> dict[str, tuple[str, int]]:
    """(role, output-channel axis) of every value consumed by a weight, bias or norm slot,
    followed back through :data:`_PASS_THROUGH` nodes."""
    roles: dict[str, tuple[str, int]] = {}
    producers = {}
    for node in graph.node:
        for output in node.output:
            producers[output] = node
        for position, name in enumerate(node.input):
            found = _onnx_role(node, position)
            if found is not None and name and name not in roles:
                roles[name] = found
    pending = list(roles)
    while pending:
        name = pending.pop()
        node = producers.get(name)
        if node is not None and node.op_type in _PASS_THROUGH and node.input:
            source = node.input[0]
            if source and source not in roles:
                roles[source] = roles[name]
                pending.append(source)
    return roles


def _onnx_role(node: Any, position: int) -> tuple[str, int] | None:
    """(role, output-channel axis) of input `position` of an ONNX `node`."""
    op = node.op_type
    if op in _NORM_OPS and position > 0:
        return "norm", 0
    if _BIAS_INPUTS.get(op) == position:
        return "bias", 0
    if op == "MatMul" and position in (0, 1):
        return "weight", position  # A (out, in) @ x, or x @ B (in, out)
    if _WEIGHT_INPUTS.get(op) == position:
        if op == "ConvTranspose":
            return "weight", 1
        if op == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            return "weight", 0 if trans_b else 1
        return "weight", 0
    if op == "Add":
        return "bias", 0
    return None


def _constant_value(file: Path, node: Any, onnx: Any) -> Any:
    """The tensor of a ``Constant`` node: its ``value``, or its ``value_float(s)`` /
    ``value_int(s)`` as float32/int64; None for strings and sparse values (skipped)."""
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == "value":
            return attribute.t
        if attribute.name in ("value_float", "value_floats", "value_int", "value_ints"):
            value = helper.get_attribute_value(attribute)
            dtype = np.float32 if "float" in attribute.name else np.int64
            return np.asarray(value, dtype=dtype)
    return None


def _onnx_tensor(file: Path, name: str, proto: Any, role: tuple[str, int]) -> Tensor | None:
    """A lazy tensor of an initializer or constant; None for a non-numeric one (skipped)."""
    if isinstance(proto, np.ndarray):
        return Tensor(name, proto, role[0], role[1])
    dtype = _ONNX_DTYPES.get(proto.data_type)
    if dtype is None:
        return None
    shape = tuple(int(n) for n in proto.dims)
    if any(n < 0 for n in shape):
        raise ModelFileError(f"{file}: tensor {name}: negative dimension in {shape}")
    count = math.prod(shape)
    if count * np.dtype(dtype).itemsize > MAX_TENSOR_BYTES:
        raise ModelFileError(f"{file}: tensor {name}: {shape} is larger than the limit of "
                             f"{MAX_TENSOR_BYTES} bytes")
    if proto.data_location == 1:  # EXTERNAL
        loader = _external_loader(file, name, proto, count)
    else:
        loader = _embedded_loader(file, name, proto, count)
    return Tensor(name, role=role[0], channel_axis=role[1], shape=shape, dtype=dtype,
                  loader=loader)


def _stored_dtype(data_type: int) -> np.dtype:
    """How the raw bytes of an ONNX tensor are laid out (bfloat16 as its 16 bits)."""
    return np.dtype("<u2") if data_type == _BFLOAT16 else np.dtype(_ONNX_DTYPES[data_type])


def _as_read(raw: np.ndarray, data_type: int, shape: tuple[int, ...]) -> np.ndarray:
    if data_type == _BFLOAT16:
        raw = _bfloat16_values(raw)
    return raw.reshape(shape)


def _embedded_loader(file: Path, name: str, proto: Any, count: int) -> Loader:
    shape = tuple(int(n) for n in proto.dims)
    stored = _stored_dtype(proto.data_type)

    def load(dtype: Any = None) -> np.ndarray:
        return converted(_embedded_values(), dtype)

    def _embedded_values() -> np.ndarray:
        where = f"{file}: tensor {name}"
        if proto.raw_data:
            if len(proto.raw_data) != count * stored.itemsize:
                raise ModelFileError(f"{where}: holds {len(proto.raw_data)} bytes, its shape "
                                     f"{shape} needs {count * stored.itemsize}")
            raw = np.frombuffer(proto.raw_data, dtype=stored).copy()
        elif proto.data_type in (_BFLOAT16, _FLOAT16):  # 16-bit patterns in int32_data
            raw = np.asarray(proto.int32_data, dtype=np.uint32).astype(np.uint16)
            raw = raw.view(np.float16) if proto.data_type == _FLOAT16 else raw
        else:
            from onnx import numpy_helper

            try:
                raw = np.asarray(numpy_helper.to_array(proto)).reshape(-1)
            except Exception as error:  # noqa: BLE001 - onnx raises several types
                raise ModelFileError(f"{where}: unreadable ({_first_line(error)})") from None
        if raw.size != count:
            raise ModelFileError(f"{where}: holds {raw.size} values, its shape {shape} needs "
                                 f"{count}")
        return _as_read(raw, proto.data_type, shape)

    return load


def _external_loader(file: Path, name: str, proto: Any, count: int) -> Loader:
    """Check an external-data reference now (a file inside the model's directory, the
    declared length equal to the shape's size, within the file); read it on load."""
    where = f"{file}: tensor {name}"
    fields = {entry.key: entry.value for entry in proto.external_data}
    location = fields.get("location", "")
    base = file.resolve().parent
    target = (base / location).resolve()
    if not location or os.path.isabs(location) or base not in target.parents:
        raise ModelFileError(f"{where}: external data location {location[:80]!r} is not a "
                             "file inside the model's directory")
    stored = _stored_dtype(proto.data_type)
    expected = count * stored.itemsize
    try:
        offset = int(fields.get("offset", "0"))
        length = int(fields["length"]) if "length" in fields else expected
    except ValueError:
        raise ModelFileError(f"{where}: external data offset or length is not an integer") \
            from None
    if length != expected:
        raise ModelFileError(f"{where}: external data declares {length} bytes, its shape "
                             f"{tuple(proto.dims)} needs {expected}")
    try:
        with open_regular(target) as handle:
            size = os.fstat(handle.fileno()).st_size
    except (OSError, FileFormatError) as error:
        raise ModelFileError(f"{where}: external data {location!r}: "
                             f"{getattr(error, 'strerror', None) or error}") from None
    if offset < 0 or offset + expected > size:
        raise ModelFileError(f"{where}: external data {location!r} holds {size} bytes, the "
                             f"tensor needs {expected} at offset {offset}")
    shape = tuple(int(n) for n in proto.dims)

    def load(dtype: Any = None) -> np.ndarray:
        return _read_at(target, name, offset, shape, stored, proto.data_type == _BFLOAT16,
                        dtype).reshape(shape)

    return load


# --- helpers -------------------------------------------------------------------------------

def _optional(module: str, package: str, file: Path) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        hint = "pip install torch" if package == "torch" else "pip install 'ul2q-ref[models]'"
        raise MissingPackageError(
            f"{file}: reading this format needs the '{package}' package ({hint})"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


__all__ = ["MAX_TENSOR_BYTES", "QUANTIZED_MODEL_FORMAT", "ROLES", "MissingPackageError",
           "Model", "ModelFileError", "Tensor", "is_default_weight", "layer_name",
           "read_model", "role_from_name", "select_weights", "some_names"]
