#pragma once
// A model IR made ready to run: each layer's weights packed for the binary GEMM, its batch norm
// folded into per-channel thresholds (and those restated as bounds on the integer dot product), and
// where the Monte Carlo part of a pass begins. Built once; every backend reads it.
#include <cstdint>
#include <vector>

#include "engine/bgemm.h"
#include "engine/bit_matrix.h"
#include "model/model_ir.h"

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
  // A residual block's last convolution fires iff sign(BN(x) + s) >= 0 with s = +1 where its
  // shortcut map's bit is 1 (dot_bound) and s = -1 where it is 0 (low_bound): the shortcut bit
  // selects one of two thresholds per output channel.
  std::vector<std::int32_t> low_bound[2];
  std::vector<OutputAffine> affine;         // output layer, one per class
  float dropout_scale = 1.0f;               // 1 / (1 - p) of its dropout site (inverted dropout), else 1

  bool has_shortcut() const { return shape.shortcut >= 0; }
  // The bounds of one window: dot_bound[masked] without a shortcut, else per channel the one its
  // shortcut bit (`shortcut`: the window's row of the shortcut map) selects, written to `scratch`.
  const std::int32_t* bounds(bool masked, const BitWord* shortcut, std::vector<std::int32_t>& scratch) const;
};

class CompiledModel {
 public:
  explicit CompiledModel(const ModelIR& ir);

  const ModelSpec& spec() const { return spec_; }
  const std::vector<EngineLayer>& layers() const { return layers_; }
  const EngineLayer& layer(int index) const { return layers_[static_cast<std::size_t>(index)]; }
  // Layers before this one run once per image; it and the rest once per Monte Carlo sample.
  int first_dropout_layer() const { return first_dropout_; }
  // The last layer that reads map k (k = 0: the image, k = i + 1: layer i's output), -1 if none.
  int last_use(int map) const { return last_use_[static_cast<std::size_t>(map)]; }
  // Does layer `index` apply dropout masks in a pass with dropout on (`dropout`) or off?
  bool masked(int index, bool dropout) const;
  // The factor kept inputs are scaled by in such a pass: 1 / (1 - p) when masked, else 1.
  double input_scale(int index, bool dropout) const {
    return masked(index, dropout) ? layers_[static_cast<std::size_t>(index)].dropout_scale : 1.0;
  }
  // Does any layer take dropout?
  bool has_dropout() const { return any_dropout_; }

 private:
  ModelSpec spec_;
  bool any_dropout_ = false;
  std::vector<EngineLayer> layers_;
  std::vector<int> last_use_;
  int first_dropout_ = 0;
};

// The exact sense decisions of `windows` windows of a hidden layer from their integer dots
// (windows x out channels) into rows [0, windows) of `signs`, with the threshold for dropout on
// (`masked`) or off; a residual block's last convolution with its shortcut map's rows
// [0, windows) (out pixels x out channels, the layer's own output shape).
void threshold_windows(const EngineLayer& layer, const std::int32_t* dots, int windows, bool masked, BitMatrix& signs,
                       const BitMatrix* shortcut = nullptr);

// sign(BN(x)) >= 0 as the folded comparison of model_ir.h.
inline bool fires(double pre, const FoldedThreshold& t) { return t.flip ? pre <= t.threshold : pre >= t.threshold; }

}  // namespace spinbayes
