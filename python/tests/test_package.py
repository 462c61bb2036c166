"""The Python package: the same predictions as the CLI, the metrics, hardware configs as dicts,
the cost model and the ledger, errors as spinbayes.Error with the CLI's message."""
import json
import threading

import numpy as np
import pytest
import torch

import spinbayes
from conftest import spinbayes as cli, spinbayes_fails
from spinbayes.torch import export_onnx
from test_onnx_import import Chain, Residual, train_steps


@pytest.fixture(scope="module")
def imported(fashion_mnist, tmp_path_factory):
    """A residual BNN trained a few steps, exported and imported with spatial dropout; 200 test images."""
    train_x, train_y, test_x, test_y = fashion_mnist
    torch.manual_seed(11)
    model = train_steps(Residual(), train_x, train_y, steps=30)
    d = tmp_path_factory.mktemp("package")
    export_onnx(model, d / "model.onnx", (1, 28, 28))
    cli("import", d / "model.onnx", "--out", d / "run", "--dropout", "spatial", "--p", "0.15")
    images = np.ascontiguousarray(test_x[:200])
    np.save(d / "images.npy", images)
    return d, images, test_y[:200]


@pytest.mark.parametrize("backend", ["engine", "cim"])
def test_predict_equals_the_cli(imported, backend):
    d, images, _ = imported
    args = ["--backend", backend, "--samples", "6", "--seed", "5"] + (["--chip-seed", "3"] if backend == "cim" else [])
    cli("predict", "--model", d / "run", "--images", d / "images.npy", "--out", d / f"{backend}.npy", *args)
    expected = np.load(d / f"{backend}.npy")
    for model in (spinbayes.load(d / "run"), spinbayes.load(d / "model.onnx", dropout="spatial", p=0.15)):
        probs = model.predict(images, samples=6, seed=5, backend=backend, chip_seed=3)
        assert probs.shape == (6, 200, 10) and probs.dtype == np.float32
        assert np.array_equal(probs, expected)
    # The masks differ between samples: a Monte Carlo run, not one pass repeated.
    assert not np.array_equal(expected[0], expected[1])


def test_metrics_match_their_definitions(imported):
    d, images, labels = imported
    model = spinbayes.load(d / "run")
    probs = model.predict(images, samples=8, seed=2)
    mean = probs.astype(np.float64).mean(0)
    assert spinbayes.accuracy(probs, labels) == pytest.approx((mean.argmax(1) == labels).mean())
    assert spinbayes.nll(probs, labels) == pytest.approx(-np.log(np.maximum(mean[np.arange(200), labels], 1e-12)).mean(), rel=1e-6)
    onehot = np.eye(10)[labels]
    assert spinbayes.brier(probs, labels) == pytest.approx(((mean - onehot) ** 2).sum(1).mean(), rel=1e-6)
    entropy = -(mean * np.log(np.maximum(mean, 1e-300))).sum(1)
    assert np.allclose(spinbayes.entropy(probs), entropy, atol=1e-9)
    p64 = probs.astype(np.float64)
    expected_entropy = -(p64 * np.log(np.maximum(p64, 1e-300))).sum(2).mean(0)
    assert np.allclose(spinbayes.mutual_information(probs), np.maximum(entropy - expected_entropy, 0), atol=1e-9)
    # ECE with 15 equal bins, recomputed here.
    conf, hit = mean.max(1), mean.argmax(1) == labels
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(abs(conf[bins == b].mean() - hit[bins == b].mean()) * (bins == b).mean() for b in range(15) if (bins == b).any())
    assert spinbayes.ece(probs, labels) == pytest.approx(ece, abs=1e-9)
    # AUROC as the Mann-Whitney statistic, ties counted one half.
    inside, outside = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.9, 0.4, 0.7])
    u = sum((o > i) + 0.5 * (o == i) for i in inside for o in outside) / (len(inside) * len(outside))
    assert spinbayes.auroc(inside, outside) == pytest.approx(u)
    assert 0.0 <= spinbayes.aupr(inside, outside) <= 1.0 and 0.0 <= spinbayes.fpr95(inside, outside) <= 1.0


def test_hardware_configs_are_dicts_validated_as_files(imported, tmp_path):
    hw = spinbayes.hardware()
    assert hw["mtj"]["sigma_rp"] > 0 and spinbayes.hardware("ideal")["mtj"]["sigma_rp"] == 0
    # The default is the chip with its circuit; "wired" names it too; "unwired" is it without.
    assert hw["crossbar"]["wire_resistance_ohm"] == 0.14 and hw["crossbar"]["column_calibration"] == "gain_offset"
    assert spinbayes.hardware("wired") == hw
    unwired = spinbayes.hardware("unwired")
    assert unwired["crossbar"]["wire_resistance_ohm"] == 0 and unwired["crossbar"]["tile_rows"] == 128
    assert unwired["mtj"] == hw["mtj"] and unwired["dropout_module"]["trim_dac_bits"] == 0
    changed = spinbayes.hardware({"mtj": {"sigma_rp": 0.07}})
    assert changed["mtj"]["sigma_rp"] == 0.07 and changed["crossbar"] == hw["crossbar"]
    (tmp_path / "hw.json").write_text(json.dumps({"mtj": {"sigma_rp": 0.07}}))
    assert spinbayes.hardware(str(tmp_path / "hw.json")) == changed
    with pytest.raises(spinbayes.Error) as e:
        spinbayes.hardware({"mtj": {"sigma_rp": 5.0}})
    (tmp_path / "bad.json").write_text(json.dumps({"mtj": {"sigma_rp": 5.0}}))
    code, err = spinbayes_fails("hw", "--hw", tmp_path / "bad.json")
    assert code == 1
    # The same cause as the CLI's line (the origin differs: "hw" against the file's name).
    assert str(e.value).split(": ", 1)[1] in err, (str(e.value), err)
    with pytest.raises(spinbayes.Error, match="unknown key"):
        spinbayes.hardware({"mtj": {"sigma_rpp": 0.1}})
    # A chip from a dict equals the chip from the file with the same values.
    d, images, _ = imported
    model = spinbayes.load(d / "run")
    assert np.array_equal(model.predict(images[:20], samples=3, backend="cim", hw={"mtj": {"sigma_rp": 0.07}}),
                          model.predict(images[:20], samples=3, backend="cim", hw=str(tmp_path / "hw.json")))


def test_cost_and_ledger_are_the_clis_figures(imported):
    d, images, _ = imported
    model = spinbayes.load(d / "run")
    cli("cost", "--model", d / "run", "--json", d / "cost.json")
    assert model.cost() == json.loads((d / "cost.json").read_text())
    ledger = model.ledger(images[:50], samples=4, seed=1)
    assert ledger["images"] == 50 and ledger["samples"] == 4
    assert len(ledger["layers"]) == 7  # stem, 2 + 2 branch convolutions, the 1x1 shortcut, the linear layer


def test_errors_are_spinbayes_errors_with_the_clis_message(imported, tmp_path):
    d, images, _ = imported
    model = spinbayes.load(d / "run")
    with pytest.raises(spinbayes.Error, match="image shape 1x32x32 does not match"):
        model.predict(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(spinbayes.Error, match="expected 4"):
        model.predict(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(spinbayes.Error, match="backend: 'gpu'"):
        model.predict(images[:2], backend="gpu")
    with pytest.raises(spinbayes.Error, match="not found"):
        spinbayes.load(tmp_path / "missing.onnx")
    with pytest.raises(spinbayes.Error, match=r"\(Conv\): weights are not binary"):
        bad = tmp_path / "float.onnx"
        torch.onnx.export(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(1352, 10)),
                          torch.zeros(1, 1, 28, 28), str(bad), opset_version=13)
        spinbayes.load(bad)
    assert issubclass(spinbayes.Error, ValueError)
    # Arguments the command line would refuse are refused here too, as spinbayes.Error.
    for call, message in [
        (lambda: model.predict(images[:2].astype(np.uint8)), "images: dtype uint8"),
        (lambda: model.predict(images[:2], seed=-1), "seed: must be in"),
        (lambda: model.predict(images[:2], samples=float("nan")), "samples: expected an integer"),
        (lambda: model.predict(images[:2], hw={"mtj": {"sigma_rp": 0.1}}), "hw: only with backend 'cim'"),
        (lambda: model.predict(images[:2], backend="cim", hw=""), "hw: empty"),
        (lambda: spinbayes.hardware(str(tmp_path / "no-such.json")), r"^hw: '.*no-such.json' is neither a preset"),
        (lambda: model.predict(images[:2], backend="cim", hw={"mtj": object()}), "hw: not a config"),
        (lambda: spinbayes.load(d / "run", dropout="spatial", p=0.1), "is a run directory"),
        (lambda: spinbayes.load(d / "model.onnx", p=0.5), "p: given without dropout"),
        (lambda: spinbayes.load(str(d / "model.onnx") + "\0junk"), "holds a NUL byte"),
        (lambda: spinbayes.accuracy(np.zeros((1, 4, 10), np.float32), np.zeros(4, np.int64)), "sums to 0"),
        (lambda: spinbayes.accuracy(np.full((4, 10), 0.1, np.float32), np.full(4, 1.7)), "labels: dtype float64"),
        (lambda: spinbayes.set_threads(2**40), "threads: must be in 1..1024"),
    ]:
        with pytest.raises(spinbayes.Error, match=message):
            call()


def test_the_gil_is_released_while_predicting(imported):
    d, images, _ = imported
    model = spinbayes.load(d / "run")
    spinbayes.set_threads(1)
    done, ticks = threading.Event(), [0]

    def run():
        model.predict(np.repeat(images, 5, axis=0), samples=20)
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    while not done.is_set():
        ticks[0] += 1
    worker.join()
    spinbayes.set_threads(2)
    # The loop above runs only while the worker does not hold the GIL.
    assert ticks[0] > 1000


def test_the_example_runs_end_to_end(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys
    from conftest import CLI
    root = pathlib.Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "examples" / "pytorch_to_chip.py"), "--seconds", "3", "--out", str(tmp_path),
                        "--cli", CLI], capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    lines = r.stdout
    assert "software (engine): accuracy" in lines and "default chip: accuracy" in lines
    assert "energy per inference (T = 20): spatial dropout" in lines
