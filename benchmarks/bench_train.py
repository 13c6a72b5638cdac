"""Seconds per training epoch: our NumPy trainer (float and μL2Q 2-bit) vs PyTorch on the CPU.

    python benchmarks/bench_train.py [--images 20000] [--batch 64] [--threads 2]

Trains LeNet-5 for one epoch on the first --images images of the embedded MNIST subset at
batch 64, in float and with μL2Q 2-bit weights, and the same architecture in PyTorch (same
thread count, same batch, SGD with momentum) when torch is installed. Prints seconds per
epoch and the ratios, which are what to compare (absolute seconds depend on the machine).
Test-set evaluation is excluded: only the training epoch is timed.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2,
                        help="BLAS / torch threads (set before NumPy is imported)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="epochs per configuration, interleaved; the fastest counts")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)

    import numpy as np

    import ul2q_ref
    from ul2q_ref.nn.data import iterate_minibatches, load_mnist_small
    from ul2q_ref.nn.losses import softmax_cross_entropy
    from ul2q_ref.nn.optim import SGD
    from ul2q_ref.nn.train import TrainConfig, build

    dataset = load_mnist_small()
    images = dataset.to_float(dataset.train_images[: args.images])
    labels = dataset.train_labels[: args.images]

    def numpy_epoch(scheme: str, bits: int | None) -> float:
        config = TrainConfig(scheme=scheme, bits=bits, batch=args.batch)
        model, _ = build(config, dataset)
        optimizer = SGD(model.parameters(), momentum=0.9, weight_decay=5e-4)
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        for index in iterate_minibatches(len(labels), args.batch, rng):
            _, grad = softmax_cross_entropy(model.forward(images[index], training=True),
                                            labels[index])
            model.backward(grad, need_input_grad=False)
            optimizer.step(0.01)
        return time.perf_counter() - started

    results = {"numpy float": float("inf"), "numpy ul2q 2-bit": float("inf")}
    for _ in range(args.repeats):  # interleaved, so that a slow spell hits both alike
        results["numpy float"] = min(results["numpy float"], numpy_epoch("float", None))
        results["numpy ul2q 2-bit"] = min(results["numpy ul2q 2-bit"], numpy_epoch("ul2q", 2))
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 20, 5), torch.nn.MaxPool2d(2), torch.nn.Conv2d(20, 50, 5),
            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(800, 500),
            torch.nn.ReLU(), torch.nn.Linear(500, 10),
        )
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        for index in iterate_minibatches(len(labels), args.batch, rng):
            index = torch.from_numpy(index)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x_all[index]), y_all[index])
            loss.backward()
            optimizer.step()
        results[f"torch {torch.__version__} float"] = time.perf_counter() - started

    print(f"LeNet-5, one epoch of {len(labels)} images, batch {args.batch}, "
          f"{args.threads} thread(s), ul2q_ref.HAVE_FAST={ul2q_ref.HAVE_FAST}")
    print(f"{'run':<28} {'s/epoch':>8}")
    for name, seconds in results.items():
        print(f"{name:<28} {seconds:8.2f}")
    print(f"ul2q 2-bit / float (NumPy): {results['numpy ul2q 2-bit'] / results['numpy float']:.3f}"
          "  (target <= 1.03 on 1 thread)")
    torch_keys = [k for k in results if k.startswith("torch")]
    if torch_keys:
        print(f"NumPy float / torch float:  {results['numpy float'] / results[torch_keys[0]]:.3f}"
              "  (target <= 1.5)")


if __name__ == "__main__":
    main()
