"""``ul2q-ref reproduce``: every part on tiny settings, the report, determinism and the CLI."""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref.cli import main
from ul2q_ref.nn.data import load_dataset
from ul2q_ref.nn.train import TrainConfig, build
from ul2q_ref.profiles import paper_lambda
from ul2q_ref.reproduce import (
    PARTS,
    ReproduceConfig,
    accuracy,
    normality,
    recipes,
    reproduce,
    simulation,
    table1,
)
from ul2q_ref.reproduce.report import render_report

TINY = {"mc_samples": 4000, "sim_samples": 4000, "train_limit": 96, "test_limit": 100,
        "accuracy_runs": ("float", "ul2q-2"), "quiet": True}
"""The smallest run of every part: a few thousand samples, two short trainings."""

VOLATILE = {"run", "wall_seconds", "seconds"}
"""Keys whose values legitimately differ between two identical runs (times, dates)."""


def stable(value):
    """`value` without the keys in :data:`VOLATILE`, recursively."""
    if isinstance(value, dict):
        return {key: stable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [stable(item) for item in value]
    return value


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One complete tiny reproduction (all parts), shared by the tests that inspect it."""
    out = tmp_path_factory.mktemp("report")
    results = reproduce(ReproduceConfig(out=out, **TINY))
    return out, results


# --------------------------------------------------------------------------- part 1


def test_table1_matches_the_reference_and_the_paper():
    part = table1.compute(mc_samples=20_000, seed=3)
    rows = part["rows"]
    assert [row["bits"] for row in rows] == list(range(1, 17))
    reference = uq.lambda_table()
    spread = part["range_rule"]["expected_range"]
    assert spread == pytest.approx(9.3558465, rel=1e-7)  # E[max − min] of 400,000 N(0, 1)
    for row, ref in zip(rows, reference, strict=True):
        assert row["lambda_exact"] == ref.lam and row["loss_exact"] == ref.loss
        if row["bits"] <= 8:
            assert row["paper_source"] == "Table I"
            assert (row["paper_lambda"], row["paper_printed_loss"]) == uq.PAPER_TABLE_I[row["bits"]]
            assert row["paper_excess_loss_percent"] == pytest.approx(ref.paper_excess_percent)
        else:
            assert row["paper_source"] == "range rule" and row["paper_printed_loss"] is None
            assert row["paper_lambda"] == pytest.approx(paper_lambda(row["bits"], spread))
        assert row["paper_excess_loss_percent"] >= 0  # the exact optimum is optimal
        # the importance-sampling witness is unbiased for every k
        assert abs(row["importance_sampling_z"]) < 4.5


def test_monte_carlo_loss_is_the_sample_mean_of_the_squared_error():
    samples = np.array([-2.0, -0.1, 0.3, 1.7])
    lam = 1.0
    restored = np.array([-1.5, -0.5, 0.5, 1.5])  # 2-bit cell centres
    mean, error = table1.monte_carlo_loss(samples, lam, 2)
    assert mean == pytest.approx(np.mean((samples - restored) ** 2))
    assert error == pytest.approx(np.std((samples - restored) ** 2, ddof=1) / 2)
    draws, weights = table1.importance_samples(100_000, 0)
    assert np.mean(weights) == pytest.approx(1.0, abs=0.02)  # E_q[p/q] = 1
    assert np.all(weights <= table1.IS_SCALE)


# --------------------------------------------------------------------------- part 2


def test_simulation_compares_every_scheme_and_ul2q_wins():
    results, data = simulation.compute(samples=50_000, seed=1)
    rows = results["rows"]
    assert {(row["bits"], row["scheme"]) for row in rows} == {
        (bits, scheme) for bits, schemes in simulation.SCHEMES_BY_WIDTH.items()
        for scheme in schemes}
    for bits in simulation.BIT_WIDTHS:
        at_width = [row for row in rows if row["bits"] == bits]
        best = min(at_width, key=lambda row: row["mse"])
        assert best["scheme"] == "ul2q"
        # at 8 bits a tenth of the loss is overload beyond ±3.9σ: few of 50,000 samples
        assert best["predicted_mse"] == pytest.approx(best["mse"], rel=0.05 if bits < 8 else 0.2)
        assert best["levels_used"] <= 2**bits
    values = data.values
    assert values.size == 50_000 and results["sample_mean"] == pytest.approx(values.mean())
    restored = data.reconstructions[("ul2q", 2)]
    np.testing.assert_array_equal(restored, uq.quantize(values, 2).dequantize(np.float64))
    row = next(row for row in rows if (row["bits"], row["scheme"]) == (2, "ul2q"))
    assert row["sqnr_db"] == pytest.approx(10 * np.log10(np.mean(values**2) / row["mse"]))


# --------------------------------------------------------------------------- part 3


def test_accuracy_runs_share_the_schedule_and_follow_the_fork_s_widths():
    base = TrainConfig(epochs=1, train_limit=64, test_limit=50)
    dataset = load_dataset("mnist-small")
    outcome = accuracy.compute(base, runs=("float", "ternary", "fixed_point-4"), seeds=(2,),
                               dataset=dataset, progress=False)
    rows = {row["run"]: row for row in outcome.results["rows"]}
    assert set(rows) == {"float", "ternary", "fixed_point-4"}
    assert rows["fixed_point-4"]["layers"] == {
        "conv1": {"scheme": "fixed_point", "bits": 4},
        "conv2": {"scheme": "fixed_point", "bits": 4},
        "fc1": {"scheme": "fixed_point", "bits": 4},
        "fc2": {"scheme": "fixed_point", "bits": 8}}
    assert rows["ternary"]["layers"]["conv1"] == {"scheme": "ternary", "bits": 2}
    assert rows["ternary"]["layers"]["fc2"] == {"scheme": "fixed_point", "bits": 8}
    assert rows["float"]["paper_accuracy_percent"] == 99.10
    assert rows["ternary"]["paper_accuracy_percent"] == 98.33  # TNN in Table IV
    assert rows["float"]["difference_to_float_points"] == 0.0
    assert rows["float"]["seeds"] == [2] and rows["float"]["sd_percent"] is None
    assert outcome.float_model is not None and outcome.results["test_images"] == 50
    with pytest.raises(ValueError, match="unknown accuracy runs"):
        accuracy.compute(base, runs=("ul2q-3",), dataset=dataset, progress=False)


# The fork's prototxts (GongCheng1919/uL2Q examples/mnist/ULQ/lenet_bn_ulq{k}.prototxt):
# maxbits k on conv1, conv2 and ip1, and maxbits 8, 8, 8, 8, 16 on ip2 for k = 1, 2, 4, 8, 16.
FORK_CLASSIFIER_BITS = {1: 8, 2: 8, 4: 8, 8: 8, 16: 16}


@pytest.mark.parametrize("model", ["lenet5", "lenet5-bn"])
@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_paper_layer_widths_for_every_k_and_model(model, bits):
    layers = [name for name, _ in build(TrainConfig(model=model),
                                        load_dataset("mnist-small"))[0].quantizable_layers()]
    assert layers == ["conv1", "conv2", "fc1", "fc2"]
    for scheme in ("ul2q", "fixed_point")[:1 if bits == 1 else 2]:  # no 1-bit fixed point
        config = accuracy.run_config(TrainConfig(model=model), f"{scheme}-{bits}")
        widths = config.plan.bits_by_layer(layers)
        assert widths == {"conv1": bits, "conv2": bits, "fc1": bits,
                          "fc2": FORK_CLASSIFIER_BITS[bits]}
        assert config.plan.scheme_for(bits) == scheme and not config.quantize_bias
        uniform = accuracy.run_config(TrainConfig(model=model), f"{scheme}-{bits}", "uniform")
        assert set(uniform.plan.bits_by_layer(layers).values()) == {bits}


def test_binary_and_ternary_keep_an_8_bit_fixed_point_classifier():
    for name, bits in (("binary", 1), ("ternary", 2)):
        config = accuracy.run_config(TrainConfig(), name)
        widths = config.plan.bits_by_layer(["a", "b", "c"])
        assert widths == {"a": bits, "b": bits, "c": 8}
        assert [config.plan.scheme_for(b) for b in widths.values()] == [name, name,
                                                                         "fixed_point"]
    assert accuracy.run_config(TrainConfig(), "float").plan.bits_by_layer(["a"]) == {"a": None}


def test_recipes_state_table_ii_and_the_fork_s_solver():
    paper, caffe = recipes.RECIPES["paper"], recipes.RECIPES["caffe"]
    assert (paper.model, paper.batch, paper.lr, paper.weight_decay) == ("lenet5", 50, 0.01, 1e-4)
    assert paper.iterations == 10_000 and paper.epochs_for(60_000) == 9  # 8⅓ epochs
    assert (caffe.model, caffe.batch, caffe.weight_decay, caffe.iterations) == (
        "lenet5-bn", 100, 4e-4, 30_000)
    assert caffe.milestones(60_000) == pytest.approx((16_000 / 600, 24_000 / 600))
    config = ReproduceConfig(full=True, recipe="caffe", data="mnist:/d").train_config(60_000)
    assert (config.model, config.batch, config.lr_policy, config.max_iterations,
            config.epochs) == ("lenet5-bn", 100, "multistep", 30_000, 50)


@pytest.mark.parametrize("values", [[99.1, 99.0, 98.95], [1.0, 2.0], [5.5]])
def test_seed_statistics_against_the_standard_library(values):
    import statistics

    stats = accuracy.seed_statistics(values)
    assert stats["mean"] == pytest.approx(statistics.fmean(values), rel=1e-15)
    if len(values) > 1:
        assert stats["sd"] == pytest.approx(statistics.stdev(values), rel=1e-12)
    else:
        assert stats["sd"] is None


def test_rows_hold_every_seed_and_their_spread():
    done = {f"{name}-seed{seed}": {"test_accuracy_percent": value, "seed": seed,
                                   "layers": {}, "epochs": [], "seconds": 1.0}
            for name, per_seed in (("float", (99.0, 99.2, 99.1)), ("ul2q-2", (98.9, 99.3, 99.1)))
            for seed, value in zip((0, 1, 2), per_seed, strict=True)}
    rows = {row["run"]: row for row in accuracy._rows(("float", "ul2q-2"), (0, 1, 2), done)}
    assert rows["ul2q-2"]["per_seed_percent"] == [98.9, 99.3, 99.1]
    assert rows["ul2q-2"]["test_accuracy_percent"] == pytest.approx(99.1)
    assert rows["ul2q-2"]["sd_percent"] == pytest.approx(0.2)
    assert rows["ul2q-2"]["difference_to_paper_points"] == pytest.approx(99.1 - 99.12)
    assert rows["ul2q-2"]["difference_to_float_points"] == pytest.approx(0.0, abs=1e-12)


def test_seeds_in_processes_resume_and_refuse_a_finished_report(tmp_path):
    settings = {"parts": ("accuracy",), "out": tmp_path, "iterations": 3, "train_limit": 64,
                "test_limit": 20, "accuracy_runs": ("float", "ul2q-2"), "quiet": True}
    first = reproduce(ReproduceConfig(seeds=2, jobs=2, **settings))
    rows = first["parts"]["accuracy"]["rows"]
    assert [row["seeds"] for row in rows] == [[0, 1], [0, 1]]
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == [
        "float-seed0", "float-seed1", "ul2q-2-seed0", "ul2q-2-seed1"]
    with pytest.raises(ValueError, match="finished report; use --force"):
        reproduce(ReproduceConfig(seeds=2, **settings))
    # an unfinished report resumes: finished jobs are reused, not trained again
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    (tmp_path / "results.json").write_text(json.dumps(dict(saved, complete=False)))
    marker = tmp_path / "runs" / "float-seed0" / "result.json"
    before = marker.stat().st_mtime_ns
    again = reproduce(ReproduceConfig(seeds=2, **settings))
    assert marker.stat().st_mtime_ns == before
    assert stable(again["parts"]["accuracy"]["rows"]) == stable(rows)
    # another configuration in the same --out is refused, --force starts afresh
    (tmp_path / "results.json").write_text(json.dumps(dict(saved, complete=False)))
    with pytest.raises(ValueError, match="another configuration"):
        reproduce(ReproduceConfig(seeds=2, **dict(settings, iterations=4)))
    fresh = reproduce(ReproduceConfig(seeds=1, force=True, **settings))
    assert [row["seeds"] for row in fresh["parts"]["accuracy"]["rows"]] == [[0], [0]]


# --------------------------------------------------------------------------- part 4


def test_normality_statistics_of_gaussian_and_uniform_weights():
    rng = np.random.default_rng(0)
    gaussian = normality.layer_statistics(rng.normal(0.1, 0.02, 200_000), bits=(2,))
    assert abs(gaussian["skewness"]) < 0.02 and abs(gaussian["excess_kurtosis"]) < 0.05
    assert gaussian["ks_distance"] < 0.01
    assert gaussian["loss"]["2"]["ratio"] == pytest.approx(1.0, abs=0.02)
    assert gaussian["loss"]["2"]["best_lambda_ratio"] == pytest.approx(1.0, abs=0.03)
    assert gaussian["loss"]["2"]["best_saving_percent"] < 0.5
    uniform = normality.layer_statistics(rng.uniform(-1, 1, 200_000), bits=(8,))
    assert uniform["excess_kurtosis"] == pytest.approx(-1.2, abs=0.02)
    # uniform on ±√3σ: the best 8-bit step covers the range exactly, 2√3/256
    assert uniform["loss"]["8"]["best_lambda_ratio"] == pytest.approx(
        2 * np.sqrt(3) / 256 / uq.optimal_lambda(8), rel=0.02)


def test_normality_of_a_model_at_initialisation_is_uniform():
    model, _ = build(TrainConfig(seed=4), load_dataset("mnist-small"))
    part = normality.compute(model, model, source="an untrained LeNet-5")
    assert [row["layer"] for row in part["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    fc1 = part["layers"][2]
    assert fc1["count"] == 400_000 and fc1["excess_kurtosis"] == pytest.approx(-1.2, abs=0.02)
    assert fc1["initial"]["excess_kurtosis"] == fc1["excess_kurtosis"]
    assert set(fc1["loss"]) == {"1", "2", "4", "8"}


# --------------------------------------------------------------------------- the report


def test_results_json_holds_every_table(tiny_run):
    out, results = tiny_run
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["complete"] is True and saved["part_order"] == list(PARTS)
    parts = saved["parts"]
    assert len(parts["table1"]["rows"]) == 16
    assert len(parts["simulation"]["rows"]) == 12 and len(parts["simulation"]["loss_curves"]) == 4
    assert [row["run"] for row in parts["accuracy"]["rows"]] == ["float", "ul2q-2"]
    assert [row["layer"] for row in parts["normality"]["layers"]] == ["conv1", "conv2", "fc1",
                                                                        "fc2"]
    assert "the float run of part 3" in parts["normality"]["source"]
    for name in PARTS:
        assert parts[name]["wall_seconds"] > 0
    assert saved["run"]["cpu_count"] >= 1 and saved["run"]["seed"] == 0
    assert render_report(saved) == (out / "report.md").read_text(encoding="utf-8")


def test_report_references_every_figure_and_every_figure_exists(tiny_run):
    pytest.importorskip("matplotlib")
    out, results = tiny_run
    text = (out / "report.md").read_text(encoding="utf-8")
    referenced = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text))
    on_disk = {path.name for path in out.glob("*.png")}
    assert referenced == on_disk == set(results["figures"])
    assert len(on_disk) == 5
    for name in on_disk:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("## 1. Table I", "## 2. Simulated", "## 3. Accuracy", "## 4. Are the",
                    "## Wall time"):
        assert heading in text


def test_same_seed_same_numbers(tiny_run, tmp_path):
    _, first = tiny_run
    second = reproduce(ReproduceConfig(out=tmp_path, **TINY))
    assert stable(first) == stable(second)
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert stable(saved) == stable(json.loads(json.dumps(second)))


def test_other_seed_other_numbers(tmp_path):
    first = reproduce(ReproduceConfig(out=tmp_path / "a", parts=("table1",), mc_samples=500,
                                      quiet=True))
    second = reproduce(ReproduceConfig(out=tmp_path / "b", parts=("table1",), mc_samples=500,
                                       seed=1, quiet=True))
    assert stable(first) != stable(second)


def test_without_matplotlib_the_tables_are_written_and_the_report_says_how(
        tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    results = reproduce(ReproduceConfig(out=tmp_path, parts=("table1", "simulation"),
                                        mc_samples=500, sim_samples=500, quiet=True))
    assert results["figures"] == [] and not list(tmp_path.glob("*.png"))
    assert results["run"]["versions"]["matplotlib"] == "not installed"
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "pip install 'ul2q-ref[plot]'" in text and "![" not in text
    assert "| 16 |" in text  # the tables are there
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert len(saved["parts"]["table1"]["rows"]) == 16


def test_normality_alone_trains_its_own_float_model(tmp_path):
    results = reproduce(ReproduceConfig(out=tmp_path, parts=("normality",), train_limit=64,
                                        test_limit=20, quiet=True))
    assert "trained for this part" in results["parts"]["normality"]["source"]
    assert list(results["parts"]) == ["normality"]


# --------------------------------------------------------------------------- the CLI


def test_cli_runs_one_part(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "simulation", "--out", str(out), "--quiet", "--seed", "5"]) == 0
    assert "report.md" in capsys.readouterr().out
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["part_order"] == ["simulation"] and saved["run"]["seed"] == 5
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    jobs = f" --jobs {cores}" if cores != 1 else ""  # --jobs auto: one per usable core
    assert saved["run"]["command"] == (f"ul2q-ref reproduce simulation --out {out} --seed 5"
                                       f"{jobs} --quiet")


def test_cli_rejects_a_bad_part_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "table2"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'table2'" in capsys.readouterr().err


@pytest.mark.parametrize("data, message", [
    ("cifar10:/tmp", "expected mnist-small or mnist:DIR"),
    ("imagenet", "expected mnist-small or mnist:DIR"),
    ("mnist:/nonexistent/mnist", "/nonexistent/mnist"),
])
def test_cli_rejects_bad_data_before_running_anything(data, message, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "accuracy", "--data", data, "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ul2q-ref reproduce: error:") and message in error
    assert len(error.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--quick", "--full"], ["--seeds", "0"],
                                  ["--jobs", "0"], ["--jobs", "many"],
                                  ["--epochs", "2", "--iterations", "5"],
                                  ["--recipe", "imagenet"], ["--layers", "some"]])
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", *argv])
    assert exit_info.value.code == 2


def test_cli_refuses_an_output_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["reproduce", "table1", "--out", str(target), "--quiet"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_full_mode_reads_the_default_mnist_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("UL2Q_MNIST_DIR", str(tmp_path / "mnist"))
    config = ReproduceConfig(full=True)
    assert config.resolved_data == f"mnist:{(tmp_path / 'mnist').resolve()}"
    assert config.schedule(60_000) == (9, 10_000) and config.mode == "full"
    assert ReproduceConfig(data="mnist:/d", epochs=3).mode == "custom"
    assert ReproduceConfig(iterations=30).mode == "custom"
    assert ReproduceConfig().mode == "quick"
    assert ReproduceConfig().resolved_data == "mnist-small"
    assert ReproduceConfig().schedule(20_000) == (1, None)
    assert ReproduceConfig(epochs=3).train_config(20_000).epochs == 3
    assert ReproduceConfig(iterations=450).schedule(20_000) == (2, 450)  # 400 per epoch
    monkeypatch.delenv("UL2Q_MNIST_DIR")
    with pytest.raises(ValueError, match=r"^no MNIST directory: set the environment variable "
                                         r"UL2Q_MNIST_DIR .* or pass --data mnist:DIR$"):
        _ = ReproduceConfig(full=True).resolved_data
    with pytest.raises(ValueError, match="parts"):
        ReproduceConfig(parts=("table3",))


def test_max_iterations_stops_inside_an_epoch(monkeypatch):
    from ul2q_ref.nn import optim
    from ul2q_ref.nn.train import train

    steps = []
    original = optim.SGD.step
    monkeypatch.setattr(optim.SGD, "step", lambda self, rate: (steps.append(rate),
                                                               original(self, rate))[1])
    dataset = load_dataset("mnist-small")
    result = train(TrainConfig(epochs=5, max_iterations=6, batch=16, train_limit=64,
                               test_limit=10), progress=False, dataset=dataset)
    assert len(steps) == 6  # 4 iterations per epoch: one whole epoch and 2 of the next
    assert [m.epoch for m in result.history] == [1, 2]
    with pytest.raises(ValueError, match="max_iterations"):
        TrainConfig(max_iterations=0)


def test_the_other_table_iv_rows_name_models_the_torch_recipe_has():
    models = pytest.importorskip("ul2q_ref.torch.models")
    for command in accuracy.OTHER_MODELS_COMMAND.values():
        words = command.split()
        assert words[:2] == ["python", "examples/train_torch.py"]
        assert words[words.index("--model") + 1] in models.MODELS
