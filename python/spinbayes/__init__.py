"""spinbayes from Python: binary networks with Monte Carlo (spatial) dropout on the engine and on a
simulated spintronic chip, with numpy arrays in and out.

    import numpy as np, spinbayes
    model = spinbayes.load("runs/net")                       # a run directory, or an ONNX file
    probs = model.predict(images, samples=20, seed=1)        # [T, N, classes] float32
    chip = model.predict(images, samples=20, backend="cim", hw={"mtj": {"sigma_rp": 0.05}}, chip_seed=3)
    spinbayes.accuracy(probs, labels), spinbayes.ece(probs, labels)
    spinbayes.auroc(spinbayes.entropy(probs), spinbayes.entropy(ood_probs))
    model.cost()["schemes"], model.ledger(images, samples=20)

Errors are spinbayes.Error (a ValueError) carrying the command line's one-line message.
spinbayes.torch (binary layers for PyTorch, and their ONNX export) needs only torch.
"""
import json as _json

from ._spinbayes import Error, Model as _Model
from ._spinbayes import accuracy, aupr, auroc, brier, ece, entropy, fpr95, mutual_information, nll
from . import _spinbayes

__all__ = ["Error", "Model", "load", "hardware", "set_threads", "accuracy", "nll", "ece", "brier", "entropy",
           "mutual_information", "auroc", "aupr", "fpr95"]


def _hw_args(hw):
    """(source, json text) for the compiled part: a preset or path, or a dict over the defaults."""
    if hw is None:
        return "default", ""
    if isinstance(hw, dict):
        return "", _json.dumps(hw)
    if isinstance(hw, str):
        return hw, ""
    import os
    if isinstance(hw, os.PathLike):
        return os.fspath(hw), ""
    raise Error("hw: expected None, a preset name (default, ideal), a path or a dict")


class Model:
    """A binary network: a run directory (trained or imported) or an ONNX file."""

    def __init__(self, compiled):
        self._m = compiled

    @property
    def spec(self):
        """The model spec as a dict (network, input shape, classes, dropout), as config.json holds it."""
        return self._m.spec

    @property
    def input_shape(self):
        return tuple(self._m.input_shape)

    @property
    def classes(self):
        return self._m.classes

    def predict(self, images, samples=20, seed=1, backend="engine", hw=None, chip_seed=1, dropout=True, logits=False):
        """Monte Carlo class probabilities [T, N, classes] of float32 images [N, C, H, W] (pixels before
        the model's normalization); logits instead with logits=True; one pass (T = 1) with
        dropout=False or a model without dropout. backend "cim" runs the simulated chip of `hw`
        (None: the default; "ideal"; a config file; or a dict applied over the defaults) and
        `chip_seed`. The same seed, images and settings give what `spinbayes predict` writes."""
        source, text = _hw_args(hw)
        return self._m.predict(images, int(samples), int(seed), str(backend), source, text, int(chip_seed), bool(dropout),
                               bool(logits))

    def ledger(self, images, samples=20, seed=1, hw=None, chip_seed=1):
        """The chip's event counts over a Monte Carlo run of `images` (per layer and in total), as a dict."""
        source, text = _hw_args(hw)
        return self._m.ledger(images, int(samples), int(seed), source, text, int(chip_seed))

    def cost(self, hw=None, tech="default", samples=20, p=0.0):
        """The hardware bill per dropout scheme (modules, events, energy, latency, area) as `spinbayes cost
        --json` writes it; p = 0 prices at the model's p."""
        source, text = _hw_args(hw)
        return self._m.cost(source, text, str(tech), int(samples), float(p))

    def __repr__(self):
        return f"spinbayes.Model({self._m.origin!r}, input {self.input_shape}, {self.classes} classes)"


def load(path, dropout="none", p=0.0, dropout_layers="all"):
    """A model from a run directory, or from an ONNX file imported with the given dropout sites."""
    import os
    return Model(_Model.load(os.fspath(path), str(dropout), float(p), str(dropout_layers)))


def hardware(hw=None):
    """A hardware config as a dict, every parameter validated: None or "default", "ideal", a config
    file, or a dict of changes applied over the defaults."""
    source, text = _hw_args(hw)
    return _spinbayes.hardware(source, text)


def set_threads(threads):
    """Threads of the engine and the chip (OpenMP), and of LibTorch."""
    _spinbayes.set_threads(int(threads))
