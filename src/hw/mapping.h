#pragma once
// How a network sits on the chip: each binary-input layer unrolled onto crossbar tiles (one column
// per output channel, K*K*C_in rows in the engine's patch order (ky, kx, c), split into tiles when
// rows or columns exceed a tile), and how many dropout modules each scheme needs for it.
// The simulator and the cost model both read this, so their counts cannot drift apart.
#include <cstdint>
#include <string>
#include <vector>

#include "hw/hardware_config.h"
#include "model/model_spec.h"

namespace spinbayes {

struct LayerMapping {
  int index = 0;
  std::string name;          // "conv1", "fc2", "sc1" (a residual block's shortcut convolution), ...
  bool on_crossbar = false;  // binary input; the first layer (real pixels) runs in a digital unit
  bool output = false;       // real logits: every column is read through the ADC
  bool dropout = false;      // dropout on this layer's input
  DropoutKind dropout_kind = DropoutKind::none;  // its site's kind and rate (the model's or its own)
  double p = 0.0;
  bool per_sample = false;   // runs once per MC sample (at or after the first dropout site), else once per image
  bool linear = false;
  bool residual = false;     // a residual block's last convolution: two references per column
  int kernel = 1, in_channels = 0, in_h = 1, in_w = 1, out_channels = 0;
  int stride = 1, padding = 0, out_h = 1, out_w = 1;
  int rows = 0, cols = 0;            // K*K*C_in (fan-in) and C_out
  int row_tiles = 0, col_tiles = 0;  // tiles the layer occupies along each axis
  std::int64_t windows = 0;          // output positions: out_h * out_w (1 for linear layers)
  std::int64_t in_map_rows = 0;      // rows summed over windows whose tap lies inside the map (not padding)
  std::int64_t macs = 0;             // multiply-accumulates of one pass
  // Dropout modules for this layer under each scheme (0 where the layer has no dropout input):
  // element = one per crossbar row (K*K*C_in); spatial = one per input channel (C_in), gating
  // the K*K word lines of its channel; linear layers need one per input under both.
  int modules_element = 0, modules_spatial = 0;
};

std::vector<LayerMapping> map_layers(const ModelSpec& spec, const CrossbarParams& crossbar);

// Along one axis of a convolution: how many (output position o, kernel offset k) pairs land on
// each input coordinate x = o * stride - padding + k in [0, in_size). Their sum is the axis's
// taps inside the map; a per-element dropout module at x is read that many times.
std::vector<std::int64_t> taps_landing(int out_size, int in_size, int kernel, int stride, int padding);
// Along one axis: how many kernel offsets of each output position o land inside [0, in_size).
std::vector<std::int64_t> taps_inside(int out_size, int in_size, int kernel, int stride, int padding);

}  // namespace spinbayes
