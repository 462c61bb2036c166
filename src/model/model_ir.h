#pragma once
// The model IR: the one description of a trained binary network that every inference backend
// reads (the bit-packed engine, the crossbar simulator, the cost model). Torch-free.
//
// Per binary layer it holds the sign of every weight, batch norm folded for the hardware
// (a threshold and a flip per output channel: what a sense amplifier compares against), the raw
// batch-norm statistics it was folded from (so a backend can reproduce the float path), and for
// the output layer the per-class scale and bias that turn the dot product into logits.
//
// File format (little-endian), written atomically:
//   "SBIR" magic, u32 version (= 2), u64 payload length, payload, u32 CRC-32 (zlib) of the payload.
//   The payload is the ModelSpec as JSON (u32 length + bytes; since version 2 with its "network":
//   the layer graph, network.h), then per layer: u32 out, u32 fan_in,
//   the weight signs bit-packed (1 = +1, row-major out x fan_in, rows padded to whole bytes,
//   bit i of a row in bit i % 8 of byte i / 8, padding bits zero),
//   then out x {f32 bn_mean, f32 bn_var, f32 bn_gamma, f32 bn_beta}, and f32 bn_eps.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "model/model_spec.h"

namespace spinbayes {

struct BinaryLayerIR {
  LayerSpec shape;
  // Weight signs, +1 / -1, out_channels x fan_in with fan_in ordered as LibTorch's
  // (in_channel, ky, kx) for convolutions and the input feature index for linear layers.
  std::vector<std::int8_t> weights;
  // Batch norm after the layer: y = (x - mean) / sqrt(var + eps) * gamma + beta.
  std::vector<float> bn_mean, bn_var, bn_gamma, bn_beta;
  float bn_eps = 1e-5f;

  int fan_in() const { return shape.in_channels * shape.kernel * shape.kernel; }
};

// sign(BN(x)) as one comparison: the output is +1 iff (flip ? x <= threshold : x >= threshold),
// where x is the layer's pre-activation (dot product times the dropout scale 1 / (1 - p) when
// dropout is on). gamma > 0: x >= mean - beta * sqrt(var + eps) / gamma; gamma < 0: the inequality
// flips; gamma == 0: the output is the constant sign(beta) (threshold -inf or +inf).
struct FoldedThreshold {
  double threshold = 0.0;
  bool flip = false;
};
// With `shift`, the comparison sign(BN(x) + shift) >= 0: a residual block's output, whose shortcut
// bit adds shift = +1 or -1 (BN's beta moved by the shift).
FoldedThreshold fold_batch_norm(float mean, float var, float gamma, float beta, float eps, double shift = 0.0);

// Output layer: logits = scale * x + bias with scale = gamma / sqrt(var + eps),
// bias = beta - mean * scale.
struct OutputAffine {
  double scale = 1.0, bias = 0.0;
};
OutputAffine fold_output(float mean, float var, float gamma, float beta, float eps);

struct ModelIR {
  static constexpr std::uint32_t kVersion = 2;  // reads 1 (zoo networks, no graph) too
  ModelSpec spec;
  std::vector<BinaryLayerIR> layers;  // same order and shapes as build_layers(spec)

  // Consistency of layers with build_layers(spec) and of every array's length; throws Error.
  void validate() const;
};

void save_model_ir(const ModelIR& ir, const std::filesystem::path& path);
// Throws Error("<path>: ...") for a missing, truncated, wrong-magic, wrong-version,
// wrong-checksum or inconsistent file.
ModelIR load_model_ir(const std::filesystem::path& path);

}  // namespace spinbayes
