"""Binary layers for PyTorch with the semantics of spinbayes, and their ONNX export.

A network built from these trains in PyTorch with the straight-through estimator and exports
(eval mode, `export_onnx`) to what `spinbayes import` reads:

    conv = BinaryConv2d(1, 16, 3, padding=1)   # weights sign(w) in the forward pass
    bn = torch.nn.BatchNorm2d(16)
    h = binary_sign(bn(conv(x)))               # activations +-1
    h = SpatialDropout(0.1)(h)                 # dropout on a layer's binary input

Semantics, as on the chip: a binary layer's weights are sign(w); its output is sign(BN(dot)), or
sign(BN(dot) + s) at the end of a residual block whose shortcut s is the block input or a binary
1x1 convolution of it; sign(0) = +1 while training (in the exported graph, ONNX's Sign gives 0 at
exactly 0, which the importer reads as +1). Dropout acts on a layer's binary input, scaled by
1 / (1 - p): SpatialDropout drops whole channels (MC-SpatialDropout), ElementDropout single values.
The first layer sees the (normalized) image; the last linear layer (+ BatchNorm1d) gives logits.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["binary_sign", "BinarySign", "BinaryConv2d", "BinaryLinear", "SpatialDropout", "ElementDropout", "export_onnx"]


def _hard_sign(x):
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def binary_sign(x):
    """sign(x) with sign(0) = +1; while training, the gradient of hardtanh (1 where |x| <= 1)."""
    if torch.onnx.is_in_onnx_export() or not torch.is_grad_enabled():
        return torch.sign(x)
    clipped = F.hardtanh(x)
    return clipped + (_hard_sign(x) - clipped).detach()


def _binary_weight(w):
    """sign(w) forward, identity gradient (the straight-through estimator for weights)."""
    if torch.onnx.is_in_onnx_export() or not torch.is_grad_enabled():
        return torch.sign(w)
    return w + (_hard_sign(w) - w).detach()


class BinarySign(nn.Module):
    def forward(self, x):
        return binary_sign(x)


class BinaryConv2d(nn.Conv2d):
    """A convolution with weights sign(w) (no bias: batch norm follows)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)

    def forward(self, x):
        return F.conv2d(x, _binary_weight(self.weight), None, self.stride, self.padding)


class BinaryLinear(nn.Linear):
    """A linear layer with weights sign(w) (no bias: batch norm follows)."""

    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x):
        return F.linear(x, _binary_weight(self.weight))


class SpatialDropout(nn.Dropout2d):
    """Drops whole input channels with probability p, the rest scaled by 1 / (1 - p)."""


class ElementDropout(nn.Dropout):
    """Drops single input values with probability p, the rest scaled by 1 / (1 - p)."""


def clip_weights(model, bound=1.0):
    """Keeps the latent weights of the binary layers in [-bound, bound] (call after each step)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (BinaryConv2d, BinaryLinear)):
                m.weight.clamp_(-bound, bound)


def export_onnx(model, path, input_shape):
    """Exports `model` in eval mode (no dropout nodes) for `spinbayes import`: opset 13, any batch size."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(model, torch.zeros((1,) + tuple(input_shape)), str(path), opset_version=13,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}})
    finally:
        model.train(was_training)
