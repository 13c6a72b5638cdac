"""ul2q-ref: the executable specification of μL2Q ultra-low loss quantisation.

μL2Q (Gong et al., IJCNN 2019) normalises a weight tensor w to φ = (w − μ)/σ, splits the
real line uniformly with the step λ_k that minimises E[(φ − Q(φ))²] for φ ~ N(0, 1), and
replaces each value by the centre of its cell: ŵ = α(q − ½) + β with α = λ_k σ and β = μ.

>>> import ul2q_ref as uq
>>> q = uq.quantize([0.3, -1.2, 0.8, 0.05], bits=2)
>>> q.codes.tolist(), round(float(uq.optimal_lambda(1)), 6)
([1, -1, 2, 1], 1.595769)

The definition, read top to bottom: :mod:`~ul2q_ref.stats` (μ, σ),
:mod:`~ul2q_ref.gaussian` (L(λ), λ_k*), :mod:`~ul2q_ref.ul2q` (statistics, encode, decode),
:mod:`~ul2q_ref.codebook` (the result type and the affine decoder),
:mod:`~ul2q_ref.schemes` (binary, ternary, fixed point, clip). Around it:
:mod:`~ul2q_ref.api` (the functions below: validation, backend, profile),
:mod:`~ul2q_ref.kernels` (the compiled kernels and their NumPy twins),
:mod:`~ul2q_ref.profiles` (the paper's and Caffe's arithmetic).
"""

from . import schemes
from .api import (
    dequantize,
    encode,
    expected_loss,
    expected_loss_derivative,
    fake_quantize,
    lambda_table,
    moments,
    optimal_lambda,
    quantize,
)
from .codebook import Quantized, code_dtype, code_range
from .gaussian import PAPER_TABLE_I, LambdaRow
from .kernels import HAVE_FAST

__version__ = "0.1.0"

__all__ = [
    "HAVE_FAST",
    "PAPER_TABLE_I",
    "LambdaRow",
    "Quantized",
    "__version__",
    "code_dtype",
    "code_range",
    "dequantize",
    "encode",
    "expected_loss",
    "expected_loss_derivative",
    "fake_quantize",
    "lambda_table",
    "moments",
    "optimal_lambda",
    "quantize",
    "schemes",
]
