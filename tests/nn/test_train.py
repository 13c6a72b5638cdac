"""Quantisation-aware training, checkpoints, resume, export and the training CLI.

Runs are tiny (a few hundred images of the embedded MNIST subset) so that CI stays fast;
the accuracy targets are measured by benchmarks/ and recorded in docs/training.md.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import ul2q_ref as uq
from ul2q_ref.cli import main
from ul2q_ref.nn.export import export, load_integer_model
from ul2q_ref.nn.models import build_model
from ul2q_ref.nn.qat import LayerPlan, make_quantizer
from ul2q_ref.nn.train import TrainConfig, evaluate, load_checkpoint, prepare_data, train

SMALL = TrainConfig(scheme="ul2q", bits=2, epochs=1, train_limit=384, test_limit=300, batch=64)


def states_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_training_learns_in_float_and_with_ul2q():
    for config in (replace(SMALL, scheme="float", bits=None), SMALL):
        result = train(replace(config, train_limit=640), progress=False)
        assert result.history[0].train_loss < 2.3  # below chance-level cross-entropy ln 10
        assert result.test_accuracy > 0.4  # chance is 0.1


def test_forward_uses_the_quantised_shadow_weights():
    result = train(replace(SMALL, last_bits=8), progress=False)
    layers = result.model.quantizable_layers()
    assert [result.layers[name] for name, _ in layers] == [("ul2q", 2)] * 3 + [("ul2q", 8)]
    for name, layer in layers:
        bits = result.layers[name][1]
        shadow = layer.params["weight"]
        assert shadow.dtype == np.float32
        np.testing.assert_array_equal(layer.effective_weight(), uq.fake_quantize(shadow, bits))
        assert len(np.unique(layer.effective_weight())) <= 2**bits < len(np.unique(shadow))


def test_same_seed_same_weights_and_other_seed_other_weights():
    first = train(SMALL, progress=False).model.state_dict()
    second = train(SMALL, progress=False).model.state_dict()
    third = train(replace(SMALL, seed=1), progress=False).model.state_dict()
    assert states_equal(first, second)
    assert not states_equal(first, third)


def test_resume_continues_bit_for_bit(tmp_path):
    config = replace(SMALL, model="lenet5-bn", epochs=2, train_limit=256)  # BN and dropout
    straight = train(config, out_dir=tmp_path / "straight", progress=False)
    train(replace(config, epochs=1), out_dir=tmp_path / "split", progress=False)
    resumed = train(config, out_dir=tmp_path / "split", resume=True, progress=False)
    assert states_equal(straight.model.state_dict(), resumed.model.state_dict())
    assert [m.test_accuracy for m in straight.history] == [m.test_accuracy
                                                          for m in resumed.history]
    saved = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert saved["epoch"] == 2 and saved["config"] == config
    assert not list((tmp_path / "split").glob(".*tmp"))  # atomic writes leave nothing behind


@pytest.mark.parametrize(
    "config",
    [
        replace(SMALL, last_bits=8),
        replace(SMALL, scheme="ternary", bits=None, quantize_bias=True),
        replace(SMALL, scheme="fixed_point", bits=4),
        replace(SMALL, scheme="binary", bits=None, last_bits=8),
        replace(SMALL, model="lenet5-bn", bits=1, layer_bits={"conv1": 4}),
    ],
    ids=["ul2q-2-last-8", "ternary-bias", "fixed-4", "binary-last-8", "bn-ul2q-1"],
)
def test_exported_integer_model_reproduces_the_trained_model_exactly(tmp_path, config):
    result = train(config, out_dir=tmp_path, progress=False)
    export(tmp_path / "checkpoint.npz", tmp_path / "model.npz")
    _, exported, dataset = load_integer_model(tmp_path / "model.npz")
    _, _, (test_x, test_y) = prepare_data(config, dataset)
    x = dataset.to_float(test_x[:200])
    np.testing.assert_array_equal(exported.forward(x, training=False),
                                  result.model.forward(x, training=False))
    assert evaluate(exported, test_x, test_y, dataset) == result.test_accuracy
    with np.load(tmp_path / "model.npz", allow_pickle=False) as data:
        codes = [k for k in data.files if k.endswith("/codes")]
        assert codes and all(data[k].dtype.kind == "i" for k in codes)


def test_layer_plan():
    names = ["conv1", "conv2", "fc1", "fc2"]
    plan = LayerPlan("ul2q", 2, last_bits=8, overrides={"conv1": 4})
    assert plan.bits_by_layer(names) == {"conv1": 4, "conv2": 2, "fc1": 2, "fc2": 8}
    assert LayerPlan("float").bits_by_layer(names) == dict.fromkeys(names)
    assert LayerPlan("binary", last_bits=8).scheme_for(8) == "fixed_point"
    with pytest.raises(ValueError, match="unknown layers"):
        LayerPlan("ul2q", 2, overrides={"conv9": 4}).bits_by_layer(names)
    with pytest.raises(ValueError, match="scheme must be one of"):
        make_quantizer("nope", 2)
    with pytest.raises(ValueError, match="bits must be an integer from 1 to 16"):
        make_quantizer("ul2q", 0)
    assert make_quantizer("float", None) is None


def test_config_checks():
    with pytest.raises(ValueError, match="needs bits"):
        TrainConfig(scheme="ul2q")
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="resnet")
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        TrainConfig(epochs=0)
    config = TrainConfig(scheme="ul2q", bits=2, milestones=[1, 2])
    assert TrainConfig.from_json(config.to_json()) == config


def test_model_parameter_count_matches_the_paper():
    model = build_model("lenet5", np.random.default_rng(0))
    assert model.num_parameters() == 431_080  # 0.43 M in the paper's Table II


def test_cli_train_export_evaluate(tmp_path, capsys):
    run_dir, metrics = tmp_path / "run", tmp_path / "metrics.json"
    args = ["train", "--scheme", "ul2q", "--bits", "2", "--last-bits", "8", "--epochs", "1",
            "--train-limit", "256", "--test-limit", "200", "--out", str(run_dir),
            "--metrics-out", str(metrics), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    document = json.loads(metrics.read_text())
    assert document == json.loads((run_dir / "metrics.json").read_text())
    accuracy = document["final_test_accuracy"]
    first_epoch = document["epochs"][0]
    assert first_epoch["test_accuracy"] == accuracy and first_epoch["seconds"] > 0
    assert f"final test accuracy: {100 * accuracy:.2f}%" in out
    assert document["layers"]["fc2"] == {"scheme": "ul2q", "bits": 8}

    assert main(args) == 2  # refuses to overwrite the run
    assert "pass --resume to continue it or --force" in capsys.readouterr().err

    model = tmp_path / "model.npz"
    assert main(["export", str(run_dir / "checkpoint.npz"), "-o", str(model)]) == 0
    capsys.readouterr()
    for path in (run_dir / "checkpoint.npz", model):
        assert main(["evaluate", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"test accuracy: {100 * accuracy:.2f}%" in out
        assert "evaluated on 200 test images" in out and "mnist-small" in out


def test_cli_errors(tmp_path, capsys):
    assert main(["train", "--scheme", "ul2q", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "needs --bits" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "none"), "--quiet"]) == 2
    assert "--resume: no checkpoint.npz" in capsys.readouterr().err
    assert main(["train", "--data", "imagenet", "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert main(["evaluate", str(tmp_path / "junk.npz")]) == 2
    assert capsys.readouterr().err.startswith("ul2q-ref evaluate: error:")
