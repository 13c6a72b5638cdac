"""``ul2q-ref train`` as a newcomer meets it: --resume, --out, plans, leftovers (issue 20).

Each test runs the command as a user would (a subprocess, or the entry point for argument
checks) and checks the one-line error, the exit status and what exists on disk afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_hardening import TINY, listing, one_line_error, run_cli, run_main

from ul2q_ref.cli import build_parser
from ul2q_ref.cli.train import given_options
from ul2q_ref.nn import data as nndata
from ul2q_ref.nn.train import TrainConfig, train_command

QUANTISED = ["--scheme", "ul2q", "--bits", "2", "--last-bits", "8"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished one-epoch run (TINY, ul2q 2 bits, classifier at 8 bits)."""
    out = tmp_path_factory.mktemp("first-hour") / "run"
    result = run_cli("train", *QUANTISED, *TINY, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def test_out_parents_are_created_once_the_options_are_valid(tmp_path):
    out = tmp_path / "runs" / "deeper" / "ul2q2"
    result = run_cli("train", *QUANTISED, *TINY, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert (out / "checkpoint.npz").is_file()


def test_out_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    result = run_main(capsys, "train", *TINY, "--out", str(tmp_path / "file" / "run"))
    one_line_error(result, "train", "--out", "is not a directory")


@pytest.mark.parametrize("data, message", [
    ("foo", "--data: unrecognised value 'foo'"),
    ("mnist:/no-such-dir-ul2q", "--data mnist:/no-such-dir-ul2q"),
])
def test_bad_data_leaves_nothing_and_prints_no_start_line(tmp_path, capsys, data, message):
    out = tmp_path / "runs" / "x"
    result = run_main(capsys, "train", "--data", data, "--out", str(out))
    one_line_error(result, "train", message)
    assert "training" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_resume_with_the_saved_options_is_accepted(finished, tmp_path):
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "checkpoint.npz").write_bytes((finished / "checkpoint.npz").read_bytes())
    result = run_cli("train", "--resume", *QUANTISED, *TINY[:-1], "2", "--out", str(copy),
                     "--quiet")
    assert result.returncode == 0, result.stderr
    assert "(2 epochs;" in result.stdout


def test_resume_names_every_differing_option_at_once(finished, capsys):
    before = (finished / "checkpoint.npz").read_bytes()
    result = run_main(capsys, "train", "--resume", "--scheme", "binary", "--model",
                      "lenet5", "--last-bits", "4", "--seed", "3", "--epochs", "2",
                      "--out", str(finished))
    line = one_line_error(result, "train", "3 options differ", "--scheme binary (saved: ul2q)",
                          "--last-bits 4 (saved: 8)", "--seed 3 (saved: 0)")
    assert "--model" not in line  # given with its saved value
    assert (finished / "checkpoint.npz").read_bytes() == before


def test_the_same_command_again_suggests_resume_and_resume_then_works(finished, capsys):
    result = run_main(capsys, "train", *QUANTISED, *TINY, "--out", str(finished))
    one_line_error(result, "train", "already holds this run", "pass --resume")
    result = run_main(capsys, "train", *QUANTISED[:2], "--bits", "4", *TINY, "--out",
                      str(finished))
    one_line_error(result, "train", "another configuration", "--bits 4 (saved: 2)", "--force")


@pytest.mark.parametrize("epochs, message", [
    ([], "is finished (1 of 1 epochs trained); give --epochs N with N > 1"),
    (["--epochs", "1"], "is finished (1 of 1 epochs trained)"),
])
def test_resume_of_a_finished_run_says_so(finished, capsys, epochs, message):
    result = run_main(capsys, "train", "--resume", *epochs, "--out", str(finished))
    one_line_error(result, "train", message)


def test_resume_with_fewer_epochs_than_trained_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", *TINY[:-1], "2", "--out", str(out), "--quiet").returncode == 0
    result = run_main(capsys, "train", "--resume", "--epochs", "1", "--out", str(out))
    one_line_error(result, "train", "--resume --epochs 1", "already trained 2 epochs")


def test_a_foreign_plan_is_blamed_by_name_before_anything_is_created(tmp_path, capsys):
    plan = tmp_path / "foreign.json"
    plan.write_text(json.dumps({"layers": {"features.0": 2, "classifier.3.weight": 4}}))
    out = tmp_path / "runs" / "mixed"
    result = run_main(capsys, "train", "--scheme", "ul2q", "--bits-plan", str(plan), "--out",
                      str(out))
    line = one_line_error(result, "train", f"--bits-plan {plan}", "classifier.3, features.0",
                          "conv1, conv2, fc1, fc2")
    assert "--layer-bits" not in line
    assert not (tmp_path / "runs").exists()


def test_last_bits_and_a_plan_for_the_last_layer_cannot_both_hold(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"layers": {"conv1": 2, "fc2": 4}}))
    out = tmp_path / "run"
    result = run_main(capsys, "train", "--scheme", "ul2q", "--bits-plan", str(plan),
                      "--last-bits", "8", "--out", str(out))
    one_line_error(result, "train", "--last-bits 8 and --bits-plan", "last layer fc2",
                   "(8 and 4)")
    result = run_main(capsys, "train", *QUANTISED, "--layer-bits", "fc2=4", "--out", str(out))
    one_line_error(result, "train", "--last-bits 8 and --layer-bits fc2=4")
    assert not out.exists()


def test_leftover_temporaries_are_removed_by_the_next_run(finished, tmp_path):
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "checkpoint.npz").write_bytes((finished / "checkpoint.npz").read_bytes())
    leftovers = [".metrics.json.abc123.tmp", ".checkpoint.npz.x9.tmp"]
    for name in leftovers:
        (copy / name).write_text("half-written")
    result = run_cli("train", "--resume", "--epochs", "2", "--out", str(copy), "--quiet")
    assert result.returncode == 0, result.stderr
    assert listing(copy) == [".lock", "checkpoint.npz", "metrics.json"]


def test_the_recorded_command_trains_the_same_configuration():
    """train_command spells out every option; the CLI parses it back to the same config."""
    config = TrainConfig(model="lenet5", scheme="ul2q", bits=1, last_bits=8,
                         layer_bits={"conv2": 4}, quantize_bias=True, epochs=9,
                         max_iterations=10000, batch=50, lr=0.01, momentum=0.9,
                         weight_decay=1e-4, lr_policy="multistep", gamma=0.1, power=0.75,
                         milestones=(2.5, 4.0), data="mnist:/some dir/mnist",
                         train_limit=1000, test_limit=500, seed=2, backend="reference")
    command = train_command(config, "runs/x y")
    import shlex

    words = shlex.split(command)
    assert words[:2] == ["ul2q-ref", "train"] and words[-2:] == ["--out", "runs/x y"]
    args = build_parser("train").parse_args(words[1:])
    options = given_options(args)
    options["layer_bits"] = dict(options["layer_bits"])
    assert TrainConfig(epochs=args.epochs, **options) == config


def test_an_idx_file_with_absurd_dimensions_is_named(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + np.array([0, 2**32 - 1, 2**32 - 1],
                                                       dtype=">u4").tobytes())
    with pytest.raises(ValueError, match=str(path)) as caught:
        nndata.read_idx(path)
    assert "too big" in str(caught.value)
