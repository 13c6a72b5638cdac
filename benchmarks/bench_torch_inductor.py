"""How far inductor's gradients are from eager's for a 2-bit ResNet-18 (not a timed test).

    OMP_NUM_THREADS=1 python benchmarks/bench_torch_inductor.py [--float] [--no-layout-optimization]

ResNet-18 (10 classes), batch 8, 32×32, one SGD loss's gradients, eager against
``torch.compile(fullgraph=True)`` (inductor). Prints, over the conv weights, the largest
relative difference ‖g_compiled − g_eager‖ / ‖g_eager‖ and the largest
max|g_compiled − g_eager| / max|g_eager|. ``--float`` leaves the model unquantised;
``--no-layout-optimization`` sets ``torch._inductor.config.layout_optimization = False``.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch._inductor.config as inductor_config

from ul2q_ref.torch import quantize_model
from ul2q_ref.torch.models import ResNet18


def gradients(model: torch.nn.Module, forward, x: torch.Tensor, y: torch.Tensor
              ) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.nn.functional.cross_entropy(forward(x), y).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--float", action="store_true", help="do not quantise the model")
    parser.add_argument("--no-layout-optimization", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    inductor_config.layout_optimization = not args.no_layout_optimization
    torch.manual_seed(0)
    model = ResNet18(num_classes=10).train()
    if not args.float:
        quantize_model(model, 2)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    eager = gradients(model, model, x, y)
    began = time.perf_counter()
    compiled = gradients(model, torch.compile(model, fullgraph=True), x, y)
    convs = [name for name, g in eager.items() if g.dim() == 4]
    norm = max(float((compiled[n] - eager[n]).norm() / eager[n].norm()) for n in convs)
    peak = max(float((compiled[n] - eager[n]).abs().max() / eager[n].abs().max())
               for n in convs)
    print(f"{'float' if args.float else '2-bit'} ResNet-18, layout_optimization="
          f"{inductor_config.layout_optimization}: largest relative L2 difference {norm:.2e}, "
          f"largest max-abs/max {peak:.2e} over {len(convs)} conv weights "
          f"(compile + step {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
