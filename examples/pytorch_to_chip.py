"""From PyTorch to the simulated spintronic chip in one script.

Trains a small binary network with spatial dropout in PyTorch for about a minute (spinbayes.torch
layers), exports it to ONNX, imports it with `spinbayes import`, and prints its accuracy, ECE and
OOD AUROC (MNIST digits, or Gaussian noise where the digits are not converted) in software and on
the default chip, and the energy per inference of spatial against element dropout.

    cmake --build build                       # builds the spinbayes CLI and the Python package
    PYTHONPATH=build/python /usr/bin/python3 examples/pytorch_to_chip.py [--seconds 60] [--out runs/example]
"""
import argparse
import gzip
import os
import pathlib
import subprocess
import time

import numpy as np
import torch
import torch.nn as nn

import spinbayes
from spinbayes.torch import BinaryConv2d, BinaryLinear, SpatialDropout, binary_sign, clip_weights, export_onnx

ROOT = pathlib.Path(__file__).resolve().parents[1]


def read_idx(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(shape)


def fashion_mnist(split):
    d = pathlib.Path(os.environ.get("SPINBAYES_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(d / f"{prefix}-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
    return images, read_idx(d / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)


class Net(nn.Module):
    """A small VGG-style BNN: 3 binary convolutions with spatial dropout before the 2nd and 3rd."""

    def __init__(self, p=0.1):
        super().__init__()
        self.c1, self.b1 = BinaryConv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.d2, self.c2, self.b2 = SpatialDropout(p), BinaryConv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.d3, self.c3, self.b3 = SpatialDropout(p), BinaryConv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.fc, self.bf = BinaryLinear(64 * 7 * 7, 10), nn.BatchNorm1d(10)

    def forward(self, x):
        x = (x - 0.2860) / 0.3530
        h = binary_sign(self.b1(self.c1(x)))
        h = nn.functional.max_pool2d(binary_sign(self.b2(self.c2(self.d2(h)))), 2)
        h = nn.functional.max_pool2d(binary_sign(self.b3(self.c3(self.d3(h)))), 2)
        return self.bf(self.fc(torch.flatten(h, 1)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", default=str(ROOT / "runs" / "example"))
    parser.add_argument("--cli", default=str(ROOT / "build" / "spinbayes"))
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    torch.set_num_threads(2)

    train_x, train_y = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    start, steps = time.time(), 0
    while time.time() - start < args.seconds:
        i = np.random.default_rng(steps).integers(0, len(train_x), 100)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(train_x[i])), torch.from_numpy(train_y[i]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        clip_weights(model)
        steps += 1
    print(f"trained {steps} steps of 100 images in {time.time() - start:.0f} s (loss {loss.item():.3f})")

    onnx = out / "net.onnx"
    export_onnx(model, onnx, (1, 28, 28))
    run = out / "run"
    if (run / "config.json").exists():
        for f in ("config.json", "checkpoint.pt", "model.sbir", "calibration.json"):
            (run / f).unlink(missing_ok=True)
    subprocess.run([args.cli, "import", str(onnx), "--out", str(run), "--dropout", "spatial", "--p", "0.1"], check=True)

    net = spinbayes.load(run)
    images, labels = np.ascontiguousarray(test_x[:2000]), test_y[:2000]
    digits = pathlib.Path(os.environ.get("SPINBAYES_DATA_CACHE", pathlib.Path.home() / ".cache" / "spinbayes")) / "mnist-digits"
    if (digits / "images-idx3-ubyte").exists():
        ood = read_idx(digits / "images-idx3-ubyte")[:2000].astype(np.float32)[:, None] / 255.0
        ood_name = "MNIST digits"
    else:
        ood = np.clip(np.random.default_rng(0).normal(0.286, 0.353, images.shape), 0, 1).astype(np.float32)
        ood_name = "Gaussian noise"
    for backend in ("engine", "cim"):
        probs = net.predict(images, samples=20, seed=1, backend=backend)
        ood_probs = net.predict(np.ascontiguousarray(ood), samples=20, seed=2, backend=backend)
        auroc = spinbayes.auroc(spinbayes.entropy(probs), spinbayes.entropy(ood_probs))
        print(f"{'software (engine)' if backend == 'engine' else 'default chip'}: accuracy {100 * spinbayes.accuracy(probs, labels):.2f} %, "
              f"ECE {spinbayes.ece(probs, labels):.4f}, {ood_name} AUROC {auroc:.3f} (T = 20, {len(images)} images)")
    cost = net.cost(samples=20)
    spatial, element = cost["schemes"]["spatial"], cost["schemes"]["element"]
    print(f"energy per inference (T = 20): spatial dropout {spatial['energy_pj']['total'] / 1e3:.1f} nJ "
          f"({spatial['modules']} dropout modules, {spatial['energy_pj']['modules'] / 1e3:.2f} nJ in them); "
          f"element dropout {element['energy_pj']['total'] / 1e3:.1f} nJ ({element['modules']} modules, "
          f"{element['energy_pj']['modules'] / 1e3:.2f} nJ)")


if __name__ == "__main__":
    main()
