"""DistributedDataParallel with μL2Q weights: 2 gloo processes on 127.0.0.1 vs one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from ul2q_ref import torch as bridge  # noqa: E402
from ul2q_ref.torch.models import LeNet5  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_torch.py"
COMMON = ["--model", "lenet5", "--bits", "2", "--batch", "64", "--max-steps", "3",
          "--train-limit", "192", "--test-limit", "50", "--threads", "1", "--dump-ranks",
          "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def quantised(state: dict) -> dict[str, torch.Tensor]:
    model = LeNet5()
    bridge.quantize_model(model, 2)
    model.load_state_dict(state)
    return {name: getattr(model, name).weight.detach() for name in ("conv1", "conv2", "fc1",
                                                                    "fc2")}


def test_two_gloo_processes_agree_with_each_other_and_with_one(tmp_path):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(SCRIPT),
         *COMMON, "--out", str(ddp)])
    run([sys.executable, str(SCRIPT), *COMMON, "--out", str(single)])
    ranks = [torch.load(ddp / f"rank{r}.pt") for r in (0, 1)]
    one = torch.load(single / "rank0.pt")
    assert ranks[0].keys() == ranks[1].keys() == one.keys()
    for key, value in ranks[0].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, ranks[1][key]), key  # bit-identical ranks
            torch.testing.assert_close(value, one[key], rtol=1e-4, atol=1e-6)
    for name, weight in quantised(ranks[0]).items():
        assert torch.equal(weight, quantised(ranks[1])[name]), name
    torch.manual_seed(0)  # the script's initialisation
    initial = LeNet5().fc1.weight
    assert not torch.allclose(one["fc1.parametrizations.weight.original"], initial)  # trained
