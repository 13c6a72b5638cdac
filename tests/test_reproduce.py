"""``ul2q-ref reproduce``: every part on tiny settings, the report, determinism and the CLI."""

from __future__ import annotations

import json
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


def test_accuracy_runs_share_the_schedule_and_quantise_every_layer():
    base = TrainConfig(epochs=1, train_limit=64, test_limit=50, seed=2)
    dataset = load_dataset("mnist-small")
    outcome = accuracy.compute(base, runs=("float", "ternary", "fixed_point-4"),
                               dataset=dataset, progress=False)
    rows = {row["run"]: row for row in outcome.results["rows"]}
    assert set(rows) == {"float", "ternary", "fixed_point-4"}
    assert {layer["bits"] for layer in rows["fixed_point-4"]["layers"].values()} == {4}
    assert {layer["scheme"] for layer in rows["ternary"]["layers"].values()} == {"ternary"}
    assert rows["float"]["paper_accuracy_percent"] == 99.10
    assert rows["ternary"]["paper_accuracy_percent"] is None
    assert rows["float"]["difference_to_float_points"] == 0.0
    assert outcome.float_model is not None and outcome.results["test_images"] == 50
    with pytest.raises(ValueError, match="unknown accuracy runs"):
        accuracy.compute(base, runs=("ul2q-3",), dataset=dataset, progress=False)


def test_the_paper_keeps_the_last_layer_at_8_bits_when_asked():
    config = accuracy.run_config(TrainConfig(last_bits=8), "binary")
    assert config.plan.bits_by_layer(["a", "b"]) == {"a": 1, "b": 8}


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
    assert saved["run"]["command"] == (f"ul2q-ref reproduce simulation --out {out} --seed 5 "
                                       "--quiet")


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


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--quick", "--full"],
                                  ["--last-bits", "17"]])
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
    assert config.resolved_epochs == 9 and config.mode == "full"
    assert ReproduceConfig(data="mnist:/d", epochs=3).mode == "custom"
    assert ReproduceConfig().mode == "quick"
    assert ReproduceConfig().resolved_data == "mnist-small"
    assert ReproduceConfig(epochs=3).train_config().epochs == 3
    monkeypatch.delenv("UL2Q_MNIST_DIR")
    with pytest.raises(ValueError, match=r"^no MNIST directory: set the environment variable "
                                         r"UL2Q_MNIST_DIR .* or pass --data mnist:DIR$"):
        _ = ReproduceConfig(full=True).resolved_data
    with pytest.raises(ValueError, match="parts"):
        ReproduceConfig(parts=("table3",))
