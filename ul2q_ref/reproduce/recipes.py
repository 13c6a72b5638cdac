r"""The paper's training configuration: which layers get which width, and two schedules.

**Layer widths** (``layers="paper"``, the default of part 3). The fork's Caffe models
(GongCheng1919/uL2Q, ``examples/mnist/ULQ/lenet_bn_ulq{1,2,4,8,16}.prototxt`` and the
CIFAR-10 and ResNet-18 ones) put ``weights_compress: "ULQ"`` on every convolution and inner
product layer, the first one included, with ``maxbits: k``; biases stay in float; the
classifier ``ip2`` has ``maxbits: 8`` in the 1-, 2- and 4-bit files and ``maxbits: k`` in the
8- and 16-bit ones. So a network "at k bits" is

    k_l = k for every hidden layer l,    k_classifier = max(k, 8),

per tensor (Caffe keeps one (α, β) per blob). The binary and ternary baselines cannot take
8 bits; their classifier is 8-bit dynamic fixed point
(:meth:`ul2q_ref.nn.qat.LayerPlan.scheme_for`). ``layers="uniform"`` quantises the
classifier at k too (this project's earlier every-layer mode).

**Schedules** (``recipe=``). ``paper``: the paper's Table II for LeNet-5 (the 431,080-
parameter Caffe LeNet, batch 50, base learning rate 0.01, weight decay 1e-4), with what
Table II does not state taken from Caffe's LeNet solver (``lenet_solver.prototxt``: momentum
0.9, the ``inv`` policy with γ = 1e-4 and power 0.75, 10,000 iterations). ``caffe``: the
fork's own solver ``lenet_bn_solver_ulq*.prototxt`` for its ``lenet_bn`` network (this
project's ``lenet5-bn``: conv 32 and 64, fc 512, batch normalisation, dropout 0.5), batch
100, base learning rate 0.01, momentum 0.9, weight decay 4e-4, ``multistep`` with γ = 0.1 at
iterations 16,000 and 24,000, 30,000 iterations. Two details of the fork are not modelled:
its ``decay_mult: 2`` on the inner-product weights, and its input scaling by 1/256 (the
trainer standardises inputs with fixed MNIST constants instead).
"""

from __future__ import annotations

from dataclasses import dataclass

LAYER_RULES = ("paper", "uniform")
"""How part 3 assigns widths: the fork's rule (classifier at max(k, 8)) or k everywhere."""

CLASSIFIER_MIN_BITS = 8
"""The classifier's width in the fork's prototxts when the network is at k ≤ 8 bits."""


def classifier_bits(bits: int) -> int:
    """The classifier's width in a network quantised at `bits`: max(k, 8) in the fork."""
    return max(bits, CLASSIFIER_MIN_BITS)


def last_bits_for(bits: int | None, layers: str) -> int | None:
    """The trainer's ``last_bits`` for a run at `bits` under the layer rule `layers`.

    None means the classifier takes the run's own width (a float run, the ``uniform``
    rule, or k ≥ 8).
    """
    if layers not in LAYER_RULES:
        raise ValueError(f"layers must be one of {', '.join(LAYER_RULES)}, got {layers!r}")
    if bits is None or layers == "uniform" or classifier_bits(bits) == bits:
        return None
    return classifier_bits(bits)


@dataclass(frozen=True)
class Recipe:
    """One training schedule of LeNet-5 on MNIST, with where each number comes from.

    Attributes
    ----------
    name : str
        ``paper`` or ``caffe``.
    model : str
        A model of :mod:`ul2q_ref.nn.models`.
    batch, lr, momentum, weight_decay, lr_policy, gamma, power
        The solver's values (Caffe's names).
    step_iterations : tuple of int
        Iterations at which ``multistep`` multiplies the rate by γ.
    iterations : int
        Caffe's ``max_iter``: the schedule's length in SGD iterations.
    source : str
        Where the values come from, for the report.
    """

    name: str
    model: str
    batch: int
    lr: float
    momentum: float
    weight_decay: float
    lr_policy: str
    gamma: float
    power: float
    step_iterations: tuple[int, ...]
    iterations: int
    source: str

    def milestones(self, train_images: int) -> tuple[float, ...]:
        """The step iterations as the trainer's epoch milestones on `train_images` images."""
        return tuple(step * self.batch / train_images for step in self.step_iterations)

    def epochs_for(self, train_images: int) -> int:
        """Whole or partial epochs that the schedule's iterations span on `train_images`."""
        per_epoch = -(-train_images // self.batch)
        return -(-self.iterations // per_epoch)


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(
        name="paper", model="lenet5", batch=50, lr=0.01, momentum=0.9, weight_decay=1e-4,
        lr_policy="inv", gamma=1e-4, power=0.75, step_iterations=(), iterations=10_000,
        source=("Table II of the paper (LeNet-5, 0.43M parameters, batch 50, base learning "
                "rate 0.01, weight decay 1e-4); momentum 0.9, the inv policy (γ 1e-4, power "
                "0.75) and 10,000 iterations from Caffe's lenet_solver.prototxt"),
    ),
    "caffe": Recipe(
        name="caffe", model="lenet5-bn", batch=100, lr=0.01, momentum=0.9,
        weight_decay=4e-4, lr_policy="multistep", gamma=0.1,
        power=0.75, step_iterations=(16_000, 24_000), iterations=30_000,
        source=("the fork's examples/mnist/ULQ/lenet_bn_solver_ulq*.prototxt (lenet_bn: "
                "conv 32/64, fc 512, BN, dropout 0.5; batch 100, base learning rate 0.01, "
                "momentum 0.9, weight decay 4e-4, multistep γ 0.1 at 16,000 and 24,000, "
                "30,000 iterations); its decay_mult 2 on fc weights and 1/256 input scaling "
                "are not modelled"),
    ),
}
"""The two schedules of ``ul2q-ref reproduce --recipe``."""


__all__ = ["CLASSIFIER_MIN_BITS", "LAYER_RULES", "RECIPES", "Recipe", "classifier_bits",
           "last_bits_for"]
