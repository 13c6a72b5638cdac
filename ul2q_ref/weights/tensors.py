"""The tensors of a model file, described without being read; the default weight selection.

A :class:`Tensor` knows its name, shape, dtype, role and output-channel axis from the file's
header or index; its values are read only when :meth:`Tensor.load` is called, and are not
kept, so a command that handles one tensor at a time holds one tensor in memory, whatever
the model's size. :func:`select_weights` picks the tensors μL2Q quantises: by default the
**conv and linear weights**, floating-point tensors with at least two dimensions whose role
is ``"weight"``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Loader = Callable[[Any], np.ndarray]
"""``loader(dtype)``: a tensor's values, converted to `dtype` (a NumPy dtype) unless None."""

ROLES = ("weight", "bias", "norm", "other")
"""What a tensor does in its model."""

MAX_NAMES_SHOWN = 8
"""How many tensor or layer names an error line lists before ``… and N more``."""


class ModelFileError(ValueError):
    """A model file that cannot be read: the message is one line naming the file."""


class MissingPackageError(ModelFileError):
    """A model format whose optional package is not installed."""


class Tensor:
    """One tensor of a model file: what it is, and how to read its values.

    Parameters
    ----------
    name : str
        The tensor's name in the file (e.g. ``conv1.weight``).
    array : numpy.ndarray, optional
        Its values, when they are already in memory. Otherwise give `loader`, `shape` and
        `dtype`.
    role : str
        One of :data:`ROLES`.
    channel_axis : int
        The output-channel axis (0 for conv and PyTorch linear weights; 1 for the
        ``(in, out)`` weights of ONNX MatMul, Gemm without transB, and ConvTranspose).
    loader : callable, optional
        ``loader(dtype)`` returns the values (for a quantised model file: the decoded
        reconstruction), converted to `dtype` unless it is None; called by every
        :meth:`load`, so nothing stays in memory between calls.
    shape, dtype
        The shape and dtype `loader` returns (the dtype values are read as: a bfloat16
        tensor reads as float32).
    """

    __slots__ = ("_array", "_loader", "channel_axis", "dtype", "name", "role", "shape")

    def __init__(self, name: str, array: np.ndarray | None = None, role: str = "other",
                 channel_axis: int = 0, *, loader: Loader | None = None,
                 shape: Sequence[int] | None = None, dtype: Any = None) -> None:
        if (array is None) == (loader is None):
            raise TypeError("give a Tensor either its array or a loader")
        self.name = name
        self.role = role
        self.channel_axis = channel_axis
        self._array = None if array is None else np.asarray(array)
        self._loader = loader
        if self._array is not None:
            self.shape: tuple[int, ...] = tuple(self._array.shape)
            self.dtype: np.dtype = self._array.dtype
        else:
            if shape is None or dtype is None:
                raise TypeError("a Tensor with a loader needs its shape and dtype")
            self.shape = tuple(int(n) for n in shape)
            self.dtype = np.dtype(dtype)

    def load(self, dtype: Any = None) -> np.ndarray:
        """The tensor's values (read from the file now, unless they were given).

        With `dtype`, the values converted to it; a loader that can (safetensors, ONNX
        external data) reads straight into an array of that dtype, without a second copy.
        """
        if self._array is not None:
            return self._array if dtype is None else np.asarray(self._array, dtype=dtype)
        assert self._loader is not None
        return self._loader(None if dtype is None else np.dtype(dtype))

    @property
    def in_memory(self) -> bool:
        """Whether the values were given (shared with the caller), not read on each load."""
        return self._array is not None

    @property
    def array(self) -> np.ndarray:
        """The same as :meth:`load` (reads the file every time for a lazy tensor)."""
        return self.load()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        count = 1
        for n in self.shape:
            count *= n
        return count

    @property
    def layer(self) -> str:
        """The layer's name: the tensor name without a trailing ``.weight`` (``conv1``)."""
        return layer_name(self.name)

    @property
    def is_float(self) -> bool:
        return self.dtype.kind == "f"

    def __repr__(self) -> str:
        return (f"Tensor({self.name!r}, shape={self.shape}, dtype={self.dtype}, "
                f"role={self.role!r}, channel_axis={self.channel_axis})")


@dataclass(frozen=True)
class Model:
    """The tensors of one model file, in the file's order, and the file's format."""

    path: str
    format: str
    tensors: tuple[Tensor, ...]


def layer_name(tensor_name: str) -> str:
    """The layer a tensor belongs to: its name without a trailing ``.weight``."""
    return tensor_name[: -len(".weight")] if tensor_name.endswith(".weight") else tensor_name


def role_from_name(name: str) -> str:
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
    return tensor.is_float and tensor.role == "weight" and tensor.ndim >= 2


def some_names(names: Sequence[str], limit: int = MAX_NAMES_SHOWN) -> str:
    """The first `limit` of `names`, comma-separated, then ``… and N more``: a capped list
    for one-line error messages."""
    shown = ", ".join(str(name)[:200] for name in names[:limit])
    more = len(names) - limit
    return f"{shown}, … and {more} more" if more > 0 else shown


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
        chosen = [t for t in model.tensors if t.is_float and t.size > 0 and _matches(t, include)]
    else:
        chosen = [t for t in model.tensors if is_default_weight(t) and t.size > 0]
    chosen = [t for t in chosen if not _matches(t, exclude)]
    if not chosen:
        names = some_names([f"{t.name} ({t.dtype})" for t in model.tensors])
        raise ModelFileError(
            f"{model.path}: no weight tensors selected (it holds {names or 'no tensors'}); "
            "use --include PATTERN"
        )
    return chosen


def _matches(tensor: Tensor, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(tensor.name, p) or fnmatch.fnmatchcase(tensor.layer, p)
               for p in patterns)


def converted(values: np.ndarray, dtype: Any) -> np.ndarray:
    """`values` as `dtype` (no copy when it already is, or when `dtype` is None)."""
    return values if dtype is None else np.asarray(values, dtype=dtype)


__all__ = ["MAX_NAMES_SHOWN", "ROLES", "Loader", "MissingPackageError", "Model",
           "ModelFileError", "Tensor", "converted", "is_default_weight", "layer_name",
           "role_from_name", "select_weights", "some_names"]
