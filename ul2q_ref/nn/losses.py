"""Softmax cross-entropy loss (Caffe's ``SoftmaxWithLoss``) and helpers.

For logits ``z`` of shape ``(N, K)`` and integer labels ``y`` of shape ``(N,)``::

    log p[n, k] = z[n, k] - logsumexp_k(z[n, :])        (stable: subtract max_k z first)
    loss        = -(1/N) * sum_n log p[n, y_n]
    dloss/dz    = (softmax(z) - onehot(y)) / N

The gradient already includes the ``1/N`` of the mean, so it can be fed
straight into ``model.backward``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "log_softmax", "softmax", "softmax_cross_entropy"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax`` via the max-shifted log-sum-exp."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax ``exp(z_k) / sum_j exp(z_j)`` (max-shifted for stability)."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _check(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, K), got {logits.shape}")
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must be ({logits.shape[0]},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    return labels


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits.

    Parameters
    ----------
    logits
        ``(N, K)`` unnormalised scores (any float dtype; the gradient keeps it).
    labels
        ``(N,)`` integer class indices in ``[0, K)``.

    Returns
    -------
    loss : float
        ``-(1/N) sum_n log softmax(z_n)[y_n]``.
    grad : ndarray
        ``(softmax(z) - onehot(y)) / N``, same shape and dtype as ``logits``.
    """
    labels = _check(logits, labels)
    n = logits.shape[0]
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = -float(np.mean(logp[rows, labels], dtype=np.float64))
    grad = np.exp(logp)
    grad[rows, labels] -= 1
    grad *= 1.0 / n
    return loss, grad


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max logit equals the label."""
    labels = _check(logits, labels)
    return float(np.mean(logits.argmax(axis=1) == labels))
