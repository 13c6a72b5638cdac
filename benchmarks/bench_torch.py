"""Benchmark the PyTorch operator against torch's own fake quantisation (not a timed test).

    OMP_NUM_THREADS=1 nice python benchmarks/bench_torch.py [--repeats N] [--threads 1 2]

Rows (median wall time of forward + backward, in ms):

* ResNet-18's 21 weight tensors (11.68M values), 2 bits, per tensor and per channel (axis 0):
  ``bridge`` (``ul2q_ref.torch.ul2q``), ``torch fq`` (``torch.fake_quantize_per_tensor_affine``
  / ``_per_channel_affine`` given precomputed scale and zero point: a generous peer, it computes
  no statistics) and ``plain torch`` (μL2Q written in torch ops: ``std_mean``, the code rule,
  a straight-through ``detach``);
* one call on 1,000 values, per tensor: ``ul2q`` (checks its arguments every call) and the
  ``UL2Q`` module (its arguments checked once, when it is made), forward + backward, and the
  module's forward alone against torch's forward alone;
* a training step (SGD) of LeNet-5 (batch 64, 28×28) and of ResNet-18 (batch 8, 32×32): μL2Q
  at 2 bits (the paper's configuration) vs float; and the ResNet-18 QAT step with and without
  the reuse of ŵ's memory (``ul2q_ref.torch.ops.REUSE_FROM``).

Targets on one thread: issue 10 — bridge ≥ 2x faster than torch fq on the ResNet-18 set, the
1,000-value call within 5x of torch's, the LeNet-5 QAT step ≤ 1.3x the float step; issue 21 —
the 1,000-value forward ≤ 3x torch's, forward + backward ≤ 2x, the ResNet-18 step ≤ 1.2x.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ul2q_ref import kernels as registry
from ul2q_ref.gaussian import optimal_lambda
from ul2q_ref.torch import UL2Q, ops, quantize_model, ul2q
from ul2q_ref.torch.models import LeNet5, ResNet18

BITS = 2
LOW, HIGH = -(2 ** (BITS - 1)) + 1, 2 ** (BITS - 1)


def timed(step, repeats: int) -> float:
    step()  # warm up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return 1e3 * statistics.median(times)


def interleaved(first, second, repeats: int) -> tuple[float, float]:
    """Median times of two steps run alternately (so both see the same machine load)."""
    first()
    second()
    a, b = [], []
    for _ in range(repeats):
        for step, times in ((first, a), (second, b)):
            began = time.perf_counter()
            step()
            times.append(time.perf_counter() - began)
    return 1e3 * statistics.median(a), 1e3 * statistics.median(b)


def resnet_weights() -> list[torch.Tensor]:
    model = ResNet18()
    weights = [m.weight.detach().clone().requires_grad_(True) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weights) == 21
    return weights


def plain_torch(w: torch.Tensor, axis: int | None) -> torch.Tensor:
    """μL2Q in plain torch ops (float32 statistics), straight-through by detach."""
    dims = None if axis is None else tuple(d for d in range(w.dim()) if d != axis)
    std, mean = torch.std_mean(w, dim=dims, correction=0, keepdim=axis is not None)
    alpha = optimal_lambda(BITS) * std
    codes = torch.clamp(torch.floor((w - mean) / alpha) + 1.0, LOW, HIGH)
    w_hat = alpha * (codes - 0.5) + mean
    return w + (w_hat - w).detach()


def torch_fq(w: torch.Tensor, params: tuple) -> torch.Tensor:
    scale, zero, axis = params
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(w, scale, zero, LOW, HIGH)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, axis, LOW, HIGH)


def qparams(w: torch.Tensor, axis: int | None) -> tuple:
    with torch.no_grad():
        if axis is None:
            return float(w.std() * 0.9957), 0, None
        std = w.reshape(w.shape[0], -1).std(dim=1) * 0.9957
        return std.float(), torch.zeros(w.shape[0], dtype=torch.int32), 0


def forward_backward(function, weights: list[torch.Tensor], extras: list | None = None):
    """One step: function(w, extra) forward and backward for every weight."""
    pairs = list(zip(weights, extras or [None] * len(weights), strict=True))

    def step():
        for w, extra in pairs:
            w.grad = None
            function(w, extra).backward(torch.ones_like(w))
    return step


def qat_steps(network: str = "lenet5") -> tuple:
    batch, shape = (64, (1, 28, 28)) if network == "lenet5" else (8, (3, 32, 32))
    x = torch.randn(batch, *shape)
    y = torch.randint(0, 10, (batch,))

    def make(quantised: bool):
        torch.manual_seed(0)
        model = LeNet5() if network == "lenet5" else ResNet18(num_classes=10)
        if quantised:
            quantize_model(model, BITS)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return step

    return make(True), make(False)


def without_reuse(step):
    """`step` with the reuse of ŵ's memory switched off (ops.REUSE_FROM beyond any size)."""
    def run():
        saved, ops.REUSE_FROM = ops.REUSE_FROM, 1 << 62
        try:
            step()
        finally:
            ops.REUSE_FROM = saved
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    kernels = registry.fast
    weights = resnet_weights()
    small = [torch.randn(1000, requires_grad=True)]
    print(f"compiled kernels: {'yes' if kernels is not None else 'no (NumPy reference)'}; "
          f"ResNet-18 weights: {sum(w.numel() for w in weights):,} values in 21 tensors")
    print(f"{'threads':>7}  {'case':<32} {'bridge':>9} {'torch fq':>9} {'plain':>9} "
          f"{'fq/bridge':>9}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        if kernels is not None:
            kernels.set_num_threads(threads)
        for label, axis in [("ResNet-18 set, per tensor", None), ("ResNet-18 set, per channel", 0)]:
            params = [qparams(w, axis) for w in weights]
            bridge = timed(forward_backward(lambda w, _, a=axis: ul2q(w, BITS, a), weights),
                           args.repeats)
            peer = timed(forward_backward(torch_fq, weights, params), args.repeats)
            plain = timed(forward_backward(lambda w, _, a=axis: plain_torch(w, a), weights),
                          args.repeats)
            print(f"{threads:>7}  {label:<32} {bridge:9.2f} {peer:9.2f} {plain:9.2f} "
                  f"{peer / bridge:9.2f}")
        calls = 50 * args.repeats
        bridge = timed(forward_backward(lambda w, _: ul2q(w, BITS), small), calls)
        peer = timed(forward_backward(torch_fq, small, [qparams(small[0], None)]), calls)
        plain = timed(forward_backward(lambda w, _: plain_torch(w, None), small), calls)
        print(f"{threads:>7}  {'1,000 values':<32} {bridge:9.3f} {peer:9.3f} {plain:9.3f} "
              f"{peer / bridge:9.2f}")
        module = UL2Q(BITS)
        bridge = timed(forward_backward(lambda w, _, m=module: m(w), small), calls)
        print(f"{threads:>7}  {'1,000 values, UL2Q module':<32} {bridge:9.3f} {peer:9.3f} "
              f"{'':>9} {peer / bridge:9.2f}")
        values = small[0].detach()
        params = qparams(values, None)
        bridge = timed(lambda m=module, v=values: m(v), calls)
        peer = timed(lambda v=values, q=params: torch_fq(v, q), calls)
        print(f"{threads:>7}  {'1,000 values, module forward':<32} {bridge:9.3f} {peer:9.3f} "
              f"{'':>9} {peer / bridge:9.2f}")
        for network, label in [("lenet5", "LeNet-5 step: QAT vs float"),
                               ("resnet18", "ResNet-18 step: QAT vs float")]:
            quantised, plain_step = qat_steps(network)
            repeats = 3 * args.repeats if network == "lenet5" else args.repeats
            q_time, f_time = interleaved(quantised, plain_step, repeats)
            print(f"{threads:>7}  {label:<32} {q_time:9.2f} {f_time:9.2f} "
                  f"{'':>9} {q_time / f_time:9.2f}  (QAT/float)")
        quantised, _ = qat_steps("resnet18")
        fresh, _ = qat_steps("resnet18")
        reuse_time, fresh_time = interleaved(quantised, without_reuse(fresh), args.repeats)
        print(f"{threads:>7}  {'ResNet-18 QAT: ŵ reuse vs none':<32} {reuse_time:9.2f} "
              f"{fresh_time:9.2f} {'':>9} {reuse_time / fresh_time:9.2f}  (reuse/none)")


if __name__ == "__main__":
    main()
