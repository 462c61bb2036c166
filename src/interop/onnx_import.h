#pragma once
// Import of a binary network from ONNX (what torch.onnx.export writes for a network built with
// sign() on its weights and activations) into the model IR, which every backend runs.
//
// Recognized, in the order a forward pass meets them:
//   input normalization: Sub / Div / Mul / Add of the image by per-channel constants;
//   a binary layer: Conv (square kernel, equal strides, symmetric padding, no groups or dilation),
//     Gemm or MatMul, whose weight is a constant (an initializer, a Constant, or Sign / Transpose /
//     Identity / Reshape of one) of values +-1, or +-alpha with one alpha per output channel (a
//     scale that folds into the threshold); an optional bias;
//   after it, any chain of BatchNormalization and per-channel Add / Sub / Mul / Div (folded into
//     the layer's thresholds, or into the output layer's scale and bias);
//   Sign (the binary activation; sign(0) counts as +1, as on the chip), optionally after an Add of
//     a binary map: a residual block's out = sign(BN(branch) + shortcut);
//   MaxPool 2x2 / stride 2 on a layer's signs; Flatten, or Reshape to [N, C*H*W];
//   Identity, and Dropout (inference: the identity);
//   the output: the last linear layer's pre-activation, logits.
// The layers must form a chain, with residual blocks whose shortcut is the block input
// (identity) or a binary 1x1 convolution of it with the branch's stride (downsampling), as in
// network files (model/network.h). Anything else is an Error naming the node, its operator and the
// reason.
#include <filesystem>
#include <string>
#include <vector>

#include "model/model_ir.h"

namespace spinbayes {

// The dropout a model takes on the chip and in the engine: an eval-mode export has no dropout
// nodes, so sites and rate are chosen at import (as train's --dropout, --p, --dropout-layers).
struct ImportDropout {
  DropoutKind kind = DropoutKind::none;
  double p = 0.0;
  std::string layers = "all";
};

// The network in `bytes` (an ONNX ModelProto). Throws Error("<origin>: <cause>"), the cause naming
// the node ("node \"/c2/Conv\" (Conv): weights are not binary (0.37 at index 12)").
// With `warnings`, what imports but may not compute as the source does: a Sign that can see exactly
// 0 (a threshold the dot product can reach), where ONNX's Sign gives 0 and the chip +1.
ModelIR import_onnx(const std::string& bytes, const std::string& origin, const ImportDropout& dropout,
                    std::vector<std::string>* warnings = nullptr);
// The same for a file, which must be a regular file.
ModelIR import_onnx_file(const std::filesystem::path& path, const ImportDropout& dropout,
                         std::vector<std::string>* warnings = nullptr);

}  // namespace spinbayes
