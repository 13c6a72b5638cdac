"""Real models: read model files, test μL2Q's normality premise, plan bit widths, quantise.

* :mod:`~ul2q_ref.weights.tensors`: lazy tensors (read one at a time) and the default
  weight selection;
* :mod:`~ul2q_ref.weights.readers`: ``.npz``/``.npy``, safetensors, PyTorch and ONNX files
  in, named weight tensors out;
* :mod:`~ul2q_ref.weights.inspect`: per tensor the normality statistics, the actual μL2Q
  loss against the Gaussian prediction L(λ_k*), and the tensor's own best step;
* :mod:`~ul2q_ref.weights.plan`: the exact per-layer bit allocation in a budget, and the
  plan file format (its one reader);
* :mod:`~ul2q_ref.weights.model`: whole models to codes and code books and back (the
  quantised-model file format).

The commands ``ul2q-ref inspect``, ``plan``, ``quantize MODEL`` and ``dequantize`` are thin
layers over these (docs/models.md).
"""

from .inspect import inspect_tensors, tensor_report
from .model import bits_for, quantize_model, write_float_model
from .plan import capacity_bits, plan_bits, read_plan, read_plan_document, solve
from .readers import read_model
from .tensors import (
    MissingPackageError,
    Model,
    ModelFileError,
    Tensor,
    layer_name,
    select_weights,
)

__all__ = ["MissingPackageError", "Model", "ModelFileError", "Tensor", "bits_for",
           "capacity_bits", "inspect_tensors", "layer_name", "plan_bits", "quantize_model",
           "read_model", "read_plan", "read_plan_document", "select_weights", "solve",
           "tensor_report", "write_float_model"]
