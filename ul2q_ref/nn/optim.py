"""Caffe-style SGD with momentum and L2 weight decay, and learning-rate policies.

SGD update (Caffe ``SGDSolver``, *not* PyTorch's form)
------------------------------------------------------
For every parameter ``w`` with gradient ``g`` and velocity ``v`` (init 0)::

    g'  = g + wd * w             (Caffe "L2" regularisation; wd = weight_decay * decay_mult)
    v  <- momentum * v + lr * g' (lr = the policy's rate * lr_mult)
    w  <- w - v

The learning rate sits *inside* the velocity, as in Caffe.  (PyTorch keeps
``v <- momentum*v + g'`` and steps ``w -= lr*v``; the two agree only while the
learning rate is constant.)

Which parameters are decayed: like Caffe (default ``decay_mult: 1`` on every
blob) **all** parameters, biases and BatchNorm ``gamma``/``beta`` included, are
decayed by default.  Pass ``decay_mult={"conv1.bias": 0.0, ...}`` or a
callable such as :func:`weights_only` (decays only names ending in
``.weight``) to change that; ``lr_mult`` works the same way (Caffe's
``cifar10_full`` uses ``lr_mult: 2`` for biases).

The optimizer holds references to the parameter/gradient arrays yielded by
``model.parameters()`` (those are updated in place by the layers), so build it
once after the model and call ``step(lr)`` after each ``model.backward``.

Learning-rate policies (Caffe ``SolverParameter.lr_policy``)
------------------------------------------------------------
:class:`LRSchedule` ``.lr_at(iteration, epoch)``:

* ``"fixed"``:     ``base_lr``
* ``"multistep"``: ``base_lr * gamma ** k``, ``k`` = number of ``milestones``
  with ``epoch >= milestone`` (milestones in **epochs**, unlike Caffe's
  ``stepvalue`` which is in iterations)
* ``"inv"``:       ``base_lr * (1 + gamma * iteration) ** (-power)``
  (Caffe LeNet uses ``base_lr=0.01, gamma=1e-4, power=0.75``)

Units: ``iteration`` is the number of SGD updates already done (0 for the
first update, as Caffe computes the rate before incrementing ``iter_``);
``epoch`` is the float ``iteration * batch_size / n_train`` at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["SGD", "LRSchedule", "weights_only"]

Multiplier = Mapping[str, float] | Callable[[str], float] | None


def weights_only(name: str) -> float:
    """``decay_mult`` callable: 1 for ``*.weight`` parameters, 0 for biases and BN params."""
    return 1.0 if name.endswith(".weight") else 0.0


def _lookup(mult: Multiplier, name: str) -> float:
    if mult is None:
        return 1.0
    if callable(mult):
        return float(mult(name))
    return float(mult.get(name, 1.0))


class SGD:
    """Momentum SGD with Caffe's update rule (see module docstring).

    Parameters
    ----------
    params
        Iterable of ``(name, param, grad)`` triples, e.g. ``model.parameters()``.
        The arrays are kept by reference; ``param`` is updated in place.
    momentum
        Caffe ``momentum`` (0.9 in LeNet/cifar10 solvers).
    weight_decay
        Caffe ``weight_decay`` (L2 coefficient; 5e-4 in LeNet).
    lr_mult, decay_mult
        Per-parameter multipliers: a ``{name: mult}`` mapping (missing -> 1) or
        a callable ``name -> mult``.  ``decay_mult=weights_only`` skips decay of
        biases and BatchNorm parameters.
    """

    def __init__(
        self,
        params: Iterable[tuple[str, np.ndarray, np.ndarray]],
        *,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr_mult: Multiplier = None,
        decay_mult: Multiplier = None,
    ) -> None:
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self._entries: list[tuple[str, np.ndarray, np.ndarray, float, float]] = []
        self.velocity: dict[str, np.ndarray] = {}
        for name, p, g in params:
            if name in self.velocity:
                raise ValueError(f"duplicate parameter name {name!r}")
            if p.shape != g.shape:
                raise ValueError(f"{name}: param {p.shape} vs grad {g.shape}")
            self._entries.append(
                (name, p, g, _lookup(lr_mult, name), _lookup(decay_mult, name))
            )
            self.velocity[name] = np.zeros_like(p)
        self._scratch = {k: np.empty_like(v) for k, v in self.velocity.items()}

    def step(self, lr: float) -> None:
        """Apply one update with global learning rate ``lr`` (from :class:`LRSchedule`)."""
        for name, p, g, lr_m, decay_m in self._entries:
            v = self.velocity[name]
            upd = self._scratch[name]
            # upd = lr_local * (g + wd_local * p), written without temporaries
            np.multiply(p, self.weight_decay * decay_m, out=upd)
            upd += g
            upd *= lr * lr_m
            v *= self.momentum  # v = momentum * v + upd
            v += upd
            p -= v  # w = w - v

    def state_dict(self) -> dict[str, np.ndarray]:
        """Velocities as a flat dict ``"velocity.<param name>" -> array`` (copies)."""
        return {f"velocity.{k}": v.copy() for k, v in self.velocity.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore velocities saved by :meth:`state_dict` (strict: same names and shapes)."""
        expected = {f"velocity.{k}" for k in self.velocity}
        if set(state) != expected:
            missing = sorted(expected - set(state))
            unexpected = sorted(set(state) - expected)
            raise KeyError(f"optimizer state mismatch: missing={missing} unexpected={unexpected}")
        for k, v in self.velocity.items():
            src = np.asarray(state[f"velocity.{k}"])
            if src.shape != v.shape:
                raise ValueError(f"velocity.{k}: shape {src.shape} != {v.shape}")
            np.copyto(v, src, casting="same_kind")


PolicyName = Literal["fixed", "multistep", "inv"]


@dataclass(frozen=True)
class LRSchedule:
    """Caffe learning-rate policy; see the module docstring for formulas and units.

    Parameters
    ----------
    policy
        ``"fixed"``, ``"multistep"`` or ``"inv"``.
    base_lr
        Caffe ``base_lr``.
    gamma
        Decay factor (``multistep``) or ``inv`` coefficient.
    power
        Exponent of ``inv``.
    milestones
        Epochs at which ``multistep`` multiplies the rate by ``gamma``.
    """

    policy: PolicyName = "fixed"
    base_lr: float = 0.01
    gamma: float = 0.1
    power: float = 0.75
    milestones: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.policy not in ("fixed", "multistep", "inv"):
            raise ValueError(f"unknown lr policy {self.policy!r}")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError("milestones must be increasing")

    def lr_at(self, iteration: int, epoch: float) -> float:
        """Learning rate for the update with 0-based index ``iteration`` at float ``epoch``."""
        if self.policy == "fixed":
            return float(self.base_lr)
        if self.policy == "multistep":
            passed = sum(1 for m in self.milestones if epoch >= m)
            return float(self.base_lr * self.gamma**passed)
        return float(self.base_lr * (1.0 + self.gamma * iteration) ** (-self.power))
