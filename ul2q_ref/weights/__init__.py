"""Real models: read model files, test μL2Q's normality premise, plan bit widths, quantise.

* :mod:`~ul2q_ref.weights.readers`: ``.npz``/``.npy``, safetensors, PyTorch and ONNX files
  in, named weight tensors out;
* :mod:`~ul2q_ref.weights.inspect`: per tensor the normality statistics, the actual μL2Q
  loss against the Gaussian prediction L(λ_k*), and the tensor's own best step;
* :mod:`~ul2q_ref.weights.plan`: the exact per-layer bit allocation in a budget;
* :mod:`~ul2q_ref.weights.model`: whole models to codes and code books and back.

The commands ``ul2q-ref inspect``, ``plan``, ``quantize MODEL`` and ``dequantize`` are thin
layers over these (docs/models.md).
"""

from .inspect import inspect_tensors, tensor_report
from .model import bits_for, float_tensors, quantize_model, save_quantized_model, write_float_model
from .plan import capacity_bits, plan_bits, read_plan, solve
from .readers import (
    MissingPackageError,
    Model,
    ModelFileError,
    Tensor,
    layer_name,
    read_model,
    select_weights,
)

__all__ = ["MissingPackageError", "Model", "ModelFileError", "Tensor", "bits_for",
           "capacity_bits", "float_tensors", "inspect_tensors", "layer_name", "plan_bits",
           "quantize_model", "read_model", "read_plan", "save_quantized_model",
           "select_weights", "solve", "tensor_report", "write_float_model"]
