"""BNNs trained a few steps in PyTorch, exported to ONNX, imported: the engine's logits equal
PyTorch's eval-mode logits, and the ideal chip equals the engine."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import spinbayes, spinbayes_fails
from spinbayes.torch import (BinaryConv2d, BinaryLinear, SpatialDropout, binary_sign, clip_weights, export_onnx)

torch.set_num_threads(2)


class Chain(nn.Module):
    """conv-BN-sign, conv-BN-sign-pool, conv-BN-sign-pool, linear-BN: a plain chain."""

    def __init__(self, p=0.1):
        super().__init__()
        self.c1, self.b1 = BinaryConv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.d2, self.c2, self.b2 = SpatialDropout(p), BinaryConv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.d3, self.c3, self.b3 = SpatialDropout(p), BinaryConv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.d4, self.fc, self.bf = nn.Dropout(p), BinaryLinear(32 * 7 * 7, 10), nn.BatchNorm1d(10)

    def forward(self, x):
        x = (x - 0.2860) / 0.3530
        h = binary_sign(self.b1(self.c1(x)))
        h = nn.functional.max_pool2d(binary_sign(self.b2(self.c2(self.d2(h)))), 2)
        h = nn.functional.max_pool2d(binary_sign(self.b3(self.c3(self.d3(h)))), 2)
        return self.bf(self.fc(self.d4(torch.flatten(h, 1))))


class Residual(nn.Module):
    """A stem, an identity block, a downsampling block (1x1 stride-2 shortcut), linear-BN."""

    def __init__(self):
        super().__init__()
        self.stem, self.bs = BinaryConv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.a1, self.ba1 = BinaryConv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.a2, self.ba2 = BinaryConv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.d1, self.bd1 = BinaryConv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32)
        self.d2, self.bd2 = BinaryConv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.sc, self.bsc = BinaryConv2d(16, 32, 1, stride=2), nn.BatchNorm2d(32)
        self.fc, self.bf = BinaryLinear(32 * 7 * 7, 10), nn.BatchNorm1d(10)

    def forward(self, x):
        x = (x - 0.2860) / 0.3530
        h = nn.functional.max_pool2d(binary_sign(self.bs(self.stem(x))), 2)
        a = binary_sign(self.ba1(self.a1(h)))
        h = binary_sign(self.ba2(self.a2(a)) + h)
        s = binary_sign(self.bsc(self.sc(h)))
        d = binary_sign(self.bd1(self.d1(h)))
        h = binary_sign(self.bd2(self.d2(d)) + s)
        return self.bf(self.fc(torch.flatten(h, 1)))


def train_steps(model, images, labels, steps=40, batch=64, seed=1):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for step in range(steps):
        i = torch.randint(0, len(images), (batch,))
        loss = nn.functional.cross_entropy(model(torch.from_numpy(images[i.numpy()])), torch.from_numpy(labels[i.numpy()]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        clip_weights(model)
    model.eval()
    return model


@pytest.mark.parametrize("network", ["chain", "residual"])
def test_import_reproduces_pytorch_logits(network, fashion_mnist, tmp_path):
    train_x, train_y, test_x, test_y = fashion_mnist
    torch.manual_seed(7)
    model = train_steps(Chain() if network == "chain" else Residual(), train_x, train_y)
    images = np.ascontiguousarray(test_x[:1000])
    with torch.no_grad():
        reference = model(torch.from_numpy(images)).numpy()
    onnx = tmp_path / "model.onnx"
    export_onnx(model, onnx, (1, 28, 28))
    run = tmp_path / "run"
    spinbayes("import", onnx, "--out", run)
    np.save(tmp_path / "images.npy", images)

    spinbayes("predict", "--model", run, "--images", tmp_path / "images.npy", "--out", tmp_path / "engine.npy",
              "--no-dropout", "--logits")
    engine = np.load(tmp_path / "engine.npy")
    assert engine.shape == (1, 1000, 10)
    engine = engine[0]
    scale = np.abs(reference).max()
    print(f"{network}: max |engine - torch| / max |torch| = {np.abs(engine - reference).max() / scale:.2e}, "
          f"accuracy {(reference.argmax(1) == test_y[:1000]).mean():.3f}")
    assert np.abs(engine - reference).max() <= 1e-4 * scale, np.abs(engine - reference).max() / scale
    assert np.array_equal(engine.argmax(1), reference.argmax(1))
    # A few steps of training reach well above chance: the comparison is on a working network.
    assert (reference.argmax(1) == test_y[:1000]).mean() > 0.5

    spinbayes("predict", "--model", run, "--images", tmp_path / "images.npy", "--out", tmp_path / "chip.npy",
              "--no-dropout", "--logits", "--backend", "cim", "--hw", "ideal")
    assert np.array_equal(np.load(tmp_path / "chip.npy")[0], engine)


def test_imported_run_with_spatial_dropout_evaluates(fashion_mnist, tmp_path):
    train_x, train_y, _, _ = fashion_mnist
    model = train_steps(Chain(), train_x, train_y, steps=20)
    onnx = tmp_path / "model.onnx"
    export_onnx(model, onnx, (1, 28, 28))
    run = tmp_path / "run"
    out = spinbayes("import", onnx, "--out", run, "--dropout", "spatial", "--p", "0.1")
    assert "spatial dropout p=0.1" in out
    report = spinbayes("eval", "--model", run, "--backend", "engine", "--samples", "4", "--test-count", "200",
                       "--validation-count", "-1", "--ood", "gaussian")
    assert "accuracy" in report
    # A run is never mixed into a directory of other files.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    code, err = spinbayes_fails("import", onnx, "--out", tmp_path / "notes")
    assert code == 1 and "is not empty (todo.txt); import into a new directory" in err, err
    assert sorted(p.name for p in (tmp_path / "notes").iterdir() if p.name != ".spinbayes.lock") == ["todo.txt"]
    # An imported run has no training to resume.
    code, err = spinbayes_fails("train", "--out", run, "--resume")
    assert code == 1 and "imported" in err and err.count("\n") == 1


class WithRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = BinaryConv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.fc, self.bf = BinaryLinear(4 * 28 * 28, 10), nn.BatchNorm1d(10)

    def forward(self, x):
        return self.bf(self.fc(torch.flatten(torch.relu(self.b1(self.c1(x))), 1)))


class FloatConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.fc = BinaryLinear(4 * 28 * 28, 10)

    def forward(self, x):
        return self.fc(torch.flatten(binary_sign(self.b1(self.c1(x))), 1))


class FlatInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.b1, self.fc2 = BinaryLinear(784, 32), nn.BatchNorm1d(32), BinaryLinear(32, 10)

    def forward(self, x):
        return self.fc2(binary_sign(self.b1(self.fc1(x))))


@pytest.mark.parametrize("case", ["relu", "float-weights", "input-rank", "truncated", "not-onnx", "directory"])
def test_unsupported_models_are_one_line_errors(case, tmp_path):
    path = tmp_path / "model.onnx"
    torch.manual_seed(3)
    if case == "relu":
        export_onnx(WithRelu(), path, (1, 28, 28))
        expected = "(Relu): operator not supported"
    elif case == "float-weights":
        export_onnx(FloatConv(), path, (1, 28, 28))
        expected = "(Conv): weights are not binary ("
    elif case == "input-rank":
        export_onnx(FlatInput(), path, (784,))
        expected = ": rank 2, expected 4 (N x C x H x W)"
    elif case == "truncated":
        export_onnx(Chain(), path, (1, 28, 28))
        path.write_bytes(path.read_bytes()[:2000])
        expected = "not an ONNX model"
    elif case == "not-onnx":
        path.write_text("ir_version: 8\n")
        expected = "not an ONNX model"
    else:
        path.mkdir()
        expected = "not a regular file"
    code, err = spinbayes_fails("import", path, "--out", tmp_path / "run")
    assert code == 1
    assert err.startswith(f"spinbayes: error: {path}") and expected in err, err
    assert err.count("\n") == 1
    assert not (tmp_path / "run" / "config.json").exists()


def test_predict_refuses_images_of_another_shape(fashion_mnist, tmp_path):
    export_onnx(Chain(), tmp_path / "model.onnx", (1, 28, 28))
    spinbayes("import", tmp_path / "model.onnx", "--out", tmp_path / "run")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 1, 32, 32), np.float32))
    code, err = spinbayes_fails("predict", "--model", tmp_path / "run", "--images", tmp_path / "wrong.npy", "--out", tmp_path / "p.npy")
    assert code == 1 and "1x32x32 does not match" in err and err.count("\n") == 1, err
    np.save(tmp_path / "int.npy", np.zeros((3, 1, 28, 28), np.int32))
    code, err = spinbayes_fails("predict", "--model", tmp_path / "run", "--images", tmp_path / "int.npy", "--out", tmp_path / "p.npy")
    assert code == 1 and "dtype '<i4'" in err, err
    assert not (tmp_path / "p.npy").exists()
