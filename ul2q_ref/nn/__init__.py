"""From-scratch NumPy CNN building blocks for the μL2Q reference trainer.

Modules
-------
:mod:`~ul2q_ref.nn.layers`
    ``Conv2d``, ``Linear`` (with the ``weight_quantizer`` STE hook),
    ``MaxPool2d``, ``AvgPool2d``, ``ReLU``, ``BatchNorm2d``, ``BatchNorm1d``,
    ``Dropout``, ``Flatten``; protocol ``forward(x, training)`` /
    ``backward(grad_out)`` with ``params`` / ``grads`` / ``buffers`` dicts.
:mod:`~ul2q_ref.nn.losses`
    ``softmax_cross_entropy(logits, labels) -> (loss, dlogits)``, ``accuracy``.
:mod:`~ul2q_ref.nn.init`
    ``xavier_uniform`` (Caffe xavier), ``he_normal`` (Caffe msra), ``he_uniform``.
:mod:`~ul2q_ref.nn.optim`
    Caffe-style ``SGD`` and ``LRSchedule`` (``fixed`` / ``multistep`` / ``inv``).
:mod:`~ul2q_ref.nn.models`
    ``Sequential`` and ``build_model(name, rng, ...)`` for ``lenet5``,
    ``lenet5-bn`` and ``cifarnet``.

A training step::

    model = build_model("lenet5", np.random.default_rng(0))
    opt = SGD(model.parameters(), momentum=0.9, weight_decay=5e-4)
    sched = LRSchedule("inv", base_lr=0.01, gamma=1e-4, power=0.75)
    for it, (x, y) in enumerate(batches):          # x float32 (N, C, H, W), y int (N,)
        loss, dlogits = softmax_cross_entropy(model.forward(x, training=True), y)
        model.backward(dlogits, need_input_grad=False)   # skip dL/d(data)
        opt.step(sched.lr_at(it, it * batch_size / n_train))

Quantisation-aware training: ``for name, layer in model.quantizable_layers():
layer.weight_quantizer = q`` where ``q(w_f) -> w_q`` (same shape); forward uses
``w_q``, backward stores ``dL/dw_q`` as the gradient of ``w_f`` (straight-through).
"""

from .init import he_normal, he_uniform, xavier_uniform
from .layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Quantizer,
    ReLU,
)
from .losses import accuracy, log_softmax, softmax, softmax_cross_entropy
from .models import MODEL_NAMES, Sequential, build_model
from .optim import SGD, LRSchedule, weights_only

__all__ = [
    "MODEL_NAMES",
    "SGD",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "LRSchedule",
    "Layer",
    "Linear",
    "MaxPool2d",
    "Quantizer",
    "ReLU",
    "Sequential",
    "accuracy",
    "build_model",
    "he_normal",
    "he_uniform",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "weights_only",
    "xavier_uniform",
]
