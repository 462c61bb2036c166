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

import numbers as _numbers
import os as _os

import numpy as _np

from ._spinbayes import Error, Model as _Model
from . import _spinbayes

__all__ = ["Error", "Model", "load", "hardware", "set_threads", "accuracy", "nll", "ece", "brier", "entropy",
           "mutual_information", "auroc", "aupr", "fpr95"]


def _int(name, value, lo, hi):
    """An integer argument in [lo, hi], or spinbayes.Error as the command line words it."""
    if isinstance(value, bool) or not isinstance(value, _numbers.Integral):
        raise Error(f"{name}: expected an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise Error(f"{name}: must be in {lo}..{hi}, got {int(value)}")
    return int(value)


def _float(name, value):
    if isinstance(value, bool) or not isinstance(value, _numbers.Real):
        raise Error(f"{name}: expected a number, got {value!r}")
    return float(value)


def _path(name, value):
    text = _os.fspath(value) if isinstance(value, (str, _os.PathLike)) else None
    if not isinstance(text, str):
        raise Error(f"{name}: expected a path, got {value!r}")
    if "\0" in text:
        raise Error(f"{name}: {text!r} holds a NUL byte")
    return text


def _array(name, value, kinds, what):
    """A numpy array of one of the dtype kinds ('f' float, 'i'/'u' integer); nothing is converted from
    other kinds (an image of uint8 0..255 or a float label would be silently wrong)."""
    a = _np.asarray(value)
    if a.dtype.kind not in kinds:
        raise Error(f"{name}: dtype {a.dtype}, expected {what}")
    return a


_SEED_MAX = 2**64 - 1


def _hw_args(hw):
    """(source, json text) for the compiled part: a preset or path, or a dict over the defaults."""
    if hw is None:
        return "default", ""
    if isinstance(hw, dict):
        import json
        try:
            return "", json.dumps(hw, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as e:
            raise Error(f"hw: not a config of numbers and strings ({e})") from None
    if isinstance(hw, (str, _os.PathLike)):
        text = _path("hw", hw)
        if not text:
            raise Error("hw: empty (default, wired, unwired, ideal, a config file or a dict)")
        return text, ""
    raise Error("hw: expected None, a preset name (default, wired, unwired, ideal), a path or a dict")


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
        (None or "default": the chip with its circuit; "wired", the same; "unwired", without it;
        "ideal"; a config file; or a dict applied over the defaults) and `chip_seed`. The same seed, images and settings give what `spinbayes predict` writes."""
        images = _array("images", images, "f", "float32 or float64 pixels")
        if backend not in ("engine", "cim"):
            raise Error(f"backend: {backend!r} is not one of engine, cim")
        if backend == "engine" and hw is not None:
            raise Error("hw: only with backend 'cim'")
        source, text = _hw_args(hw)
        return self._m.predict(images, _int("samples", samples, 1, 100000), _int("seed", seed, 0, _SEED_MAX), backend,
                               source, text, _int("chip_seed", chip_seed, 0, _SEED_MAX), bool(dropout), bool(logits))

    def ledger(self, images, samples=20, seed=1, hw=None, chip_seed=1):
        """The chip's event counts over a Monte Carlo run of `images` (per layer and in total), as a dict."""
        images = _array("images", images, "f", "float32 or float64 pixels")
        source, text = _hw_args(hw)
        return self._m.ledger(images, _int("samples", samples, 1, 100000), _int("seed", seed, 0, _SEED_MAX), source, text,
                              _int("chip_seed", chip_seed, 0, _SEED_MAX))

    def cost(self, hw=None, tech="default", samples=20, p=0.0):
        """The hardware bill per dropout scheme (modules, events, energy, latency, area) as `spinbayes cost
        --json` writes it; p = 0 prices at the model's p."""
        source, text = _hw_args(hw)
        return self._m.cost(source, text, _path("tech", tech), _int("samples", samples, 1, 100000), _float("p", p))

    def __repr__(self):
        return f"spinbayes.Model({self._m.origin!r}, input {self.input_shape}, {self.classes} classes)"


def load(path, dropout="none", p=0.0, dropout_layers="all"):
    """A model from a run directory, or from an ONNX file imported with the given dropout sites (as
    `spinbayes import --dropout --p --dropout-layers`)."""
    path = _path("path", path)
    p = _float("p", p)
    if dropout not in ("none", "element", "spatial"):
        raise Error(f"dropout: {dropout!r} is not one of none, element, spatial")
    if _os.path.isdir(path) and (dropout != "none" or p != 0.0 or dropout_layers != "all"):
        raise Error(f"dropout: {path} is a run directory, whose dropout is its own; give dropout, p and "
                    "dropout_layers with an ONNX file")
    if dropout == "none" and p != 0.0:
        raise Error("p: given without dropout element or spatial")
    if dropout == "none" and dropout_layers != "all":
        raise Error("dropout_layers: given without dropout element or spatial")
    return Model(_Model.load(path, dropout, p, str(dropout_layers)))


def hardware(hw=None):
    """A hardware config as a dict, every parameter validated: None or "default", "wired", "unwired",
    "ideal", a config file, or a dict of changes applied over the defaults."""
    source, text = _hw_args(hw)
    return _spinbayes.hardware(source, text)


def set_threads(threads):
    """Threads of the engine and the chip (OpenMP), and of LibTorch."""
    _spinbayes.set_threads(_int("threads", threads, 1, 1024))


def _probs(probs):
    return _array("probs", probs, "f", "float probabilities")


def _labels(labels):
    return _array("labels", labels, "iu", "integer class labels")


def _scores(name, scores):
    return _array(name, scores, "fiu", "numbers")


def accuracy(probs, labels):
    """Accuracy of the mean prediction over the passes: probs [T, N, K] (or [N, K]), labels [N]."""
    return _spinbayes.accuracy(_probs(probs), _labels(labels))


def nll(probs, labels):
    """Negative log-likelihood of the mean prediction (nats)."""
    return _spinbayes.nll(_probs(probs), _labels(labels))


def brier(probs, labels):
    """Brier score of the mean prediction (sum over classes)."""
    return _spinbayes.brier(_probs(probs), _labels(labels))


def ece(probs, labels):
    """Expected calibration error of the mean prediction, 15 equal-width confidence bins."""
    return _spinbayes.ece(_probs(probs), _labels(labels))


def entropy(probs):
    """Predictive entropy of the mean prediction per input (nats)."""
    return _spinbayes.entropy(_probs(probs))


def mutual_information(probs):
    """Mutual information between prediction and masks per input (nats): entropy less expected entropy."""
    return _spinbayes.mutual_information(_probs(probs))


def auroc(in_scores, out_scores):
    """Area under the ROC curve of OOD detection, OOD the positive class (larger score = more OOD)."""
    return _spinbayes.auroc(_scores("in_scores", in_scores), _scores("out_scores", out_scores))


def aupr(in_scores, out_scores):
    """Average precision of OOD detection, OOD the positive class."""
    return _spinbayes.aupr(_scores("in_scores", in_scores), _scores("out_scores", out_scores))


def fpr95(in_scores, out_scores):
    """False-positive rate on in-distribution inputs at 95 % of OOD inputs detected."""
    return _spinbayes.fpr95(_scores("in_scores", in_scores), _scores("out_scores", out_scores))
