#pragma once
// The bit-packed Monte Carlo inference engine: executes a model IR for T stochastic passes with
// XNOR-popcount arithmetic. Layers before the first dropout site run once per image; the rest
// run once per sample. Masks come from dropout_keeps(), the same function the LibTorch path uses,
// so both backends see the same masks for the same seed.
#include <cstdint>
#include <vector>

#include "data/image_set.h"
#include "engine/bit_matrix.h"
#include "model/model_ir.h"
#include "uncertainty/metrics.h"

namespace spinbayes {

// One layer ready to run: packed weights and the folded batch norm.
struct EngineLayer {
  LayerSpec shape;
  int in_c = 0, in_h = 0, in_w = 0;  // input map (a linear layer sees the map it flattens)
  int kernel = 1, stride = 1, padding = 0;  // linear layers run as a convolution over the whole map
  BitMatrix weights;                    // binary-input layers: out x fan-in bits, (ky, kx, c) order
  PackedOperand packed_weights;         // the same, arranged once for the SIMD kernel
  std::vector<float> real_weights;      // first layer: +-1, LibTorch order (out, c, ky, kx)
  std::vector<FoldedThreshold> thresholds;  // hidden layers, one per output channel
  // The same comparison on the integer dot product, for dropout off [0] and on [1] (the dot is
  // scaled by 1 / (1 - p) when on): the channel fires iff dot_sign * dot >= dot_bound, with
  // dot_sign = -1 for a flipped threshold (dot <= b is -dot >= -b).
  std::vector<std::int32_t> dot_sign, dot_bound[2];
  std::vector<OutputAffine> affine;         // output layer, one per class
};

class Engine {
 public:
  explicit Engine(const ModelIR& ir);

  const ModelSpec& spec() const { return spec_; }
  const std::vector<EngineLayer>& layers() const { return layers_; }
  int first_dropout_layer() const { return first_dropout_; }

  // Monte Carlo predictions with the layout and mask keys of TorchModel::predict: `samples` passes
  // with dropout on, or one pass with it off. Parallel over images (OpenMP); the result does not
  // depend on the thread count.
  McPredictions predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout) const;

  // One image through layers [0, first dropout site): the binary map every sample starts from.
  BinaryMap run_prefix(const float* pixels) const;
  // The remaining layers for samples [first_sample, first_sample + count) of one image; writes
  // count x classes logits. `dropout` false = no masks. Samples whose maps are small run through
  // each layer together, as one taller binary GEMM.
  void run_suffix(const BinaryMap& prefix, std::uint64_t seed, std::uint64_t image, int first_sample, int count,
                  bool dropout, float* logits) const;
  // Layer `index`'s integer dot products (out pixels x out channels, channels fastest) for a map,
  // after applying that layer's masks when `dropout` is set. For tests and the bench.
  std::vector<std::int32_t> layer_dots(int index, const BinaryMap& input, std::uint64_t seed, std::uint64_t image,
                                       std::uint64_t sample, bool dropout) const;
  // Layer `index`'s output map (thresholded, pooled) from its dots (out pixels x out channels).
  BinaryMap layer_output(int index, const std::int32_t* dots, bool dropout) const;

 private:
  BinaryMap first_layer(const float* pixels) const;
  void apply_masks(int index, BinaryMap& map, std::uint64_t seed, std::uint64_t image, std::uint64_t sample) const;
  bool masked(int index, bool dropout) const;  // does layer `index` apply dropout masks in this pass?
  double input_scale(int index, bool dropout) const;  // 1 / (1 - p) when masked, else 1

  ModelSpec spec_;
  double dropout_scale_ = 1.0;
  std::vector<EngineLayer> layers_;
  int first_dropout_ = 0;
};

}  // namespace spinbayes
