import gzip
import os
import pathlib
import subprocess

import numpy as np
import pytest

CLI = os.environ.get("SPINBAYES_CLI", str(pathlib.Path(__file__).resolve().parents[2] / "build" / "spinbayes"))


def fashion_mnist_dir():
    return pathlib.Path(os.environ.get("SPINBAYES_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


def read_idx(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(directory, stem):
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(directory / stem)


@pytest.fixture(scope="session")
def fashion_mnist():
    """(train images, train labels, test images, test labels): float32 N x 1 x 28 x 28 in [0, 1]."""
    d = fashion_mnist_dir()
    out = []
    for split in ("train", "t10k"):
        images = read_idx(find(d, f"{split}-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
        labels = read_idx(find(d, f"{split}-labels-idx1-ubyte")).astype(np.int64)
        out += [images, labels]
    return tuple(out)


def spinbayes(*args):
    """Runs the CLI; returns its stdout, or fails the test with its one-line error."""
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"spinbayes {' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def spinbayes_fails(*args):
    """Runs the CLI expecting failure; returns (exit code, stderr)."""
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    return r.returncode, r.stderr
