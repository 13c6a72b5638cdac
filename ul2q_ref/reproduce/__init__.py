"""``ul2q-ref reproduce``: the paper's evaluation, re-derived on this machine, as one report.

Parts (each also runs alone):

1. :mod:`~ul2q_ref.reproduce.table1` — λ_k and its loss for k = 1..16 against Table I;
2. :mod:`~ul2q_ref.reproduce.simulation` — simulated normal data under every scheme;
3. :mod:`~ul2q_ref.reproduce.accuracy` — LeNet-5 on MNIST under every scheme (Table IV);
4. :mod:`~ul2q_ref.reproduce.normality` — how normal the trained weights are.

:func:`reproduce` runs them and writes ``report.md``, ``results.json`` and the PNG figures
(:mod:`~ul2q_ref.reproduce.figures`, needs the ``plot`` extra) to the output directory.
"""

from .runner import PARTS, QUICK_DATA, QUICK_EPOCHS, ReproduceConfig, reproduce

__all__ = ["PARTS", "QUICK_DATA", "QUICK_EPOCHS", "ReproduceConfig",
           "reproduce"]
