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

Readers never unpickle: ``.npz`` with ``allow_pickle=False``, PyTorch files only with
``torch.load(weights_only=True)``. Sizes are checked against the file before anything is
allocated, and a corrupt file is one :class:`ModelFileError` line naming the file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import struct
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_TENSOR_BYTES = 1 << 34
"""The largest tensor a reader accepts (16 GiB); anything claiming more is refused."""

MAX_COMPRESSION_RATIO = 1000
"""A compressed ``.npz`` member may expand at most this much (a larger ratio is a zip bomb)."""

QUANTIZED_MODEL_FORMAT = "ul2q-ref/quantized-model-v1"
"""The ``format`` of a whole model written by :func:`ul2q_ref.weights.save_quantized_model`."""

_CHECKPOINT_FORMAT = "ul2q-ref/checkpoint-v1"
_INTEGER_MODEL_FORMAT = "ul2q-ref/integer-model-v1"
_QUANTIZED_FORMAT = "ul2q-ref/quantized-v1"

ROLES = ("weight", "bias", "norm", "other")
"""What a tensor does in its model."""


class ModelFileError(ValueError):
    """A model file that cannot be read: the message is one line naming the file."""


class MissingPackageError(ModelFileError):
    """A model format whose optional package is not installed."""


@dataclass(frozen=True)
class Tensor:
    """One tensor of a model file.

    Attributes
    ----------
    name : str
        The tensor's name in the file (e.g. ``conv1.weight``).
    array : numpy.ndarray
        Its values (for a quantised model file: the decoded reconstruction).
    role : str
        One of :data:`ROLES`.
    channel_axis : int
        The output-channel axis (0 for conv and PyTorch linear weights; 1 for the
        ``(in, out)`` weights of ONNX MatMul, Gemm without transB, and ConvTranspose).
    """

    name: str
    array: np.ndarray
    role: str = "other"
    channel_axis: int = 0

    @property
    def layer(self) -> str:
        """The layer's name: the tensor name without a trailing ``.weight`` (``conv1``)."""
        return layer_name(self.name)

    @property
    def is_float(self) -> bool:
        return self.array.dtype.kind == "f"


@dataclass(frozen=True)
class Model:
    """The tensors of one model file, in the file's order, and the file's format."""

    path: str
    format: str
    tensors: tuple[Tensor, ...]


def layer_name(tensor_name: str) -> str:
    """The layer a tensor belongs to: its name without a trailing ``.weight``."""
    return tensor_name[: -len(".weight")] if tensor_name.endswith(".weight") else tensor_name


def role_from_name(name: str, array: np.ndarray) -> str:
    """The role of a named tensor of a state dict, safetensors or ``.npz`` file."""
    last = name.rsplit(".", 1)[-1].rsplit("/", 1)[-1].lower()
    if last in ("running_mean", "running_var", "num_batches_tracked"):
        return "norm"
    if last in ("weight", "kernel", "w") or last.endswith("_weight"):
        return "weight"
    if last in ("bias", "b") or last.endswith("_bias"):
        return "bias"
    return "other"


def is_default_weight(tensor: Tensor) -> bool:
    """The default selection: a floating-point conv or linear weight (role weight, ndim ≥ 2)."""
    return tensor.is_float and tensor.role == "weight" and tensor.array.ndim >= 2


def select_weights(
    model: Model, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Tensor]:
    """The tensors μL2Q quantises: the default rule, or the `include` patterns, minus `exclude`.

    Raises
    ------
    ModelFileError
        If nothing is selected (naming the file and the tensors it holds).
    """
    if include:
        chosen = [t for t in model.tensors
                  if t.is_float and t.array.size > 0 and _matches(t, include)]
    else:
        chosen = [t for t in model.tensors if is_default_weight(t) and t.array.size > 0]
    chosen = [t for t in chosen if not _matches(t, exclude)]
    if not chosen:
        names = ", ".join(t.name for t in model.tensors[:8])
        more = "" if len(model.tensors) <= 8 else ", …"
        raise ModelFileError(
            f"{model.path}: no weight tensors selected (it holds {names or 'no tensors'}{more}); "
            "use --include PATTERN"
        )
    return chosen


def _matches(tensor: Tensor, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(tensor.name, p) or fnmatch.fnmatchcase(tensor.layer, p)
               for p in patterns)


def read_model(path: str | os.PathLike[str]) -> Model:
    """Read every tensor of a model file; the format comes from the suffix.

    ``.npz`` (the project's arrays, checkpoints, integer models and quantised models, or any
    archive of arrays), ``.npy``, ``.safetensors``, ``.pt``/``.pth``/``.bin``/``.ckpt``
    (PyTorch) and ``.onnx``.
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
    fmt, tensors = readers[suffix](file)
    return Model(path=str(path), format=fmt, tensors=tuple(tensors))


# --- NumPy ---------------------------------------------------------------------------------

def _read_npy(file: Path) -> tuple[str, list[Tensor]]:
    with open(file, "rb") as handle:
        array = _read_npy_stream(handle, file.stat().st_size, str(file))
    name = file.stem
    return "npy", [Tensor(name, array, "weight" if array.ndim >= 2 else "other")]


def _read_npy_stream(handle: Any, available: int, where: str) -> np.ndarray:
    """Read one ``.npy`` stream after checking its header against the bytes available."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise ModelFileError(f"{where}: not a readable .npy array ({_first_line(error)})") from None
    if dtype.hasobject or dtype.kind not in "biufU":
        raise ModelFileError(f"{where}: holds {dtype} values; expected a numeric array")
    size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if size > MAX_TENSOR_BYTES or size > available:
        raise ModelFileError(
            f"{where}: the header claims {size} bytes of data, more than the "
            f"{min(available, MAX_TENSOR_BYTES)} available"
        )
    data = handle.read(size)
    if len(data) != size:
        raise ModelFileError(f"{where}: truncated ({len(data)} of {size} bytes of data)")
    array = np.frombuffer(data, dtype=dtype)
    if fortran:
        return array.reshape(shape, order="F").copy(order="C")
    return array.reshape(shape).copy()


def _read_npz(file: Path) -> tuple[str, list[Tensor]]:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"{file}: not a readable .npz archive ({error})") from None
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for info in archive.infolist():
            where = f"{file}: member {info.filename}"
            if not info.filename.endswith(".npy"):
                continue
            if info.file_size > MAX_TENSOR_BYTES or (
                info.compress_type != zipfile.ZIP_STORED
                and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1024)
            ):
                raise ModelFileError(f"{where}: expands to {info.file_size} bytes, refused")
            try:
                with archive.open(info) as handle:
                    arrays[info.filename[:-4]] = _read_npy_stream(handle, info.file_size, where)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
                if isinstance(error, ModelFileError):
                    raise
                raise ModelFileError(f"{where}: corrupt ({_first_line(error)})") from None
    return _npz_tensors(file, arrays)


def _text(arrays: dict[str, np.ndarray], key: str) -> str:
    value = arrays.get(key)
    return str(value) if value is not None and value.dtype.kind == "U" else ""


def _npz_tensors(file: Path, arrays: dict[str, np.ndarray]) -> tuple[str, list[Tensor]]:
    """Interpret the arrays of an ``.npz`` by its ``format`` field (plain arrays without one)."""
    kind = _text(arrays, "format")
    if kind == _CHECKPOINT_FORMAT:
        named = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
        return "ul2q-ref checkpoint", _named_tensors(named)
    if kind in (_INTEGER_MODEL_FORMAT, QUANTIZED_MODEL_FORMAT):
        return ("ul2q-ref integer model" if kind == _INTEGER_MODEL_FORMAT
                else "ul2q-ref quantized model"), _integer_model_tensors(file, arrays)
    if kind == _QUANTIZED_FORMAT:
        decoded = _decode(file, file.stem, arrays)
        return "ul2q-ref quantized tensor", [Tensor(file.stem, decoded, "weight")]
    if kind:
        raise ModelFileError(f"{file}: unknown ul2q-ref file format {kind!r}")
    return "npz arrays", _named_tensors(arrays)


def _named_tensors(arrays: dict[str, np.ndarray]) -> list[Tensor]:
    """Every numeric array as a tensor (text fields such as ``format`` are not tensors)."""
    return [Tensor(name, array, role_from_name(name, array)) for name, array in arrays.items()
            if array.dtype.kind in "biuf"]


def _integer_model_tensors(file: Path, arrays: dict[str, np.ndarray]) -> list[Tensor]:
    """The tensors of an integer model: ``quantized/NAME/…`` decoded, ``float/NAME`` as is."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    order: list[tuple[str, str]] = []
    for key, value in arrays.items():
        if key.startswith("quantized/"):
            name, _, part = key[len("quantized/"):].rpartition("/")
            if name not in groups:
                groups[name] = {}
                order.append(("quantized", name))
            groups[name][part] = value
        elif key.startswith("float/"):
            order.append(("float", key[len("float/"):]))
    tensors = []
    for kind, name in order:
        if kind == "float":
            array = arrays[f"float/{name}"]
            tensors.append(Tensor(name, array, role_from_name(name, array)))
        else:
            tensors.append(Tensor(name, _decode(file, name, groups[name]), "weight"))
    return tensors


def _decode(file: Path, name: str, fields: dict[str, np.ndarray]) -> np.ndarray:
    from ..io import quantized_from_arrays

    try:
        return quantized_from_arrays(fields, source=f"{file}: {name}").dequantize()
    except (TypeError, ValueError, KeyError) as error:
        raise ModelFileError(f"{file}: quantised tensor {name}: {_first_line(error)}") from None


# --- safetensors ---------------------------------------------------------------------------

def _read_safetensors(file: Path) -> tuple[str, list[Tensor]]:
    size = file.stat().st_size
    with open(file, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{file}: not a safetensors file (shorter than its header)")
        (header_size,) = struct.unpack("<Q", head)
        if header_size > min(size - 8, 100 << 20):
            raise ModelFileError(
                f"{file}: not a safetensors file (its header claims {header_size} bytes)"
            )
        try:
            header = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelFileError(f"{file}: not a safetensors file (its header is not JSON)") \
                from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{file}: not a safetensors file (its header is not a JSON object)")
    data_size = size - 8 - header_size
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise ModelFileError(f"{file}: tensor {name}: data offsets outside the file")
    safetensors = _optional("safetensors", "safetensors", file)
    names = sorted((n for n in header if n != "__metadata__"),
                   key=lambda n: header[n]["data_offsets"][0])
    arrays = {}
    try:
        with safetensors.safe_open(str(file), framework="np") as handle:
            for name in names:
                if header[name].get("dtype") == "BF16":
                    arrays[name] = _bfloat16(file, 8 + header_size, header[name])
                else:
                    arrays[name] = handle.get_tensor(name)
    except ModelFileError:
        raise
    except Exception as error:  # noqa: BLE001 - the package raises its own error types
        raise ModelFileError(f"{file}: corrupt safetensors file ({_first_line(error)})") from None
    return "safetensors", _named_tensors(arrays)


def _bfloat16(file: Path, start: int, entry: dict[str, Any]) -> np.ndarray:
    """A bfloat16 tensor (NumPy has no such dtype) as float32: the 16 bits are its top half."""
    shape = entry.get("shape")
    low, high = entry["data_offsets"]
    if not isinstance(shape, list) or 2 * int(np.prod(shape, dtype=np.float64)) != high - low:
        raise ModelFileError(f"{file}: a bfloat16 tensor's shape does not match its data")
    with open(file, "rb") as handle:
        handle.seek(start + low)
        raw = np.frombuffer(handle.read(high - low), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)


# --- PyTorch -------------------------------------------------------------------------------

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")


def _read_torch(file: Path) -> tuple[str, list[Tensor]]:
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as archive:
            claimed = sum(info.file_size for info in archive.infolist())
        if claimed > MAX_TENSOR_BYTES:
            raise ModelFileError(f"{file}: expands to {claimed} bytes, refused")
    torch = _optional("torch", "torch", file)
    try:
        loaded = torch.load(str(file), map_location="cpu", weights_only=True)
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
        value = value.detach().cpu()
        if value.is_floating_point() and value.dtype not in (torch.float16, torch.float32,
                                                             torch.float64):
            value = value.float()  # bfloat16 and friends: NumPy has no such dtype
        array = value.numpy().copy()
        tensors.append(Tensor(str(name), array, role_from_name(str(name), array)))
    return "PyTorch state dict", tensors


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


def _read_onnx(file: Path) -> tuple[str, list[Tensor]]:
    onnx = _optional("onnx", "onnx", file)
    from onnx import numpy_helper

    try:
        model = onnx.load(str(file))
    except Exception as error:  # noqa: BLE001 - protobuf raises its own errors
        raise ModelFileError(f"{file}: not a readable ONNX model ({_first_line(error)})") from None
    graph = model.graph
    roles: dict[str, tuple[str, int]] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            found = _onnx_role(node, position)
            if found is not None and name not in roles:
                roles[name] = found
    tensors = []
    for initializer in graph.initializer:
        try:
            array = numpy_helper.to_array(initializer, base_dir=str(file.parent))
        except Exception as error:  # noqa: BLE001
            raise ModelFileError(
                f"{file}: initializer {initializer.name}: unreadable ({_first_line(error)})"
            ) from None
        role, axis = roles.get(initializer.name, ("other", 0))
        tensors.append(Tensor(initializer.name, np.array(array), role, axis))
    return "ONNX", tensors


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
           "read_model", "role_from_name", "select_weights"]
