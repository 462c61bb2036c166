#include "hw/mapping.h"

#include <algorithm>
#include <numeric>

namespace spinbayes {

std::vector<LayerMapping> map_layers(const ModelSpec& spec, const CrossbarParams& crossbar) {
  const std::vector<LayerSpec> layers = build_layers(spec);
  std::vector<LayerMapping> out;
  // Without a dropout site every layer runs once per image (prefix_end() keeps the output layer
  // per sample, for a pass that has sites).
  const bool sites = std::any_of(layers.begin(), layers.end(), [](const LayerSpec& l) { return l.dropout_before; });
  const int first_dropout = sites ? prefix_end(layers) : static_cast<int>(layers.size());
  int conv_count = 0, linear_count = 0, shortcut_count = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    LayerMapping m;
    m.index = static_cast<int>(i);
    m.linear = l.kind == LayerSpec::Kind::linear;
    m.name = m.linear            ? "fc" + std::to_string(++linear_count)
             : l.shortcut_conv ? "sc" + std::to_string(++shortcut_count)
                               : "conv" + std::to_string(++conv_count);
    m.residual = l.shortcut >= 0;
    m.on_crossbar = !l.real_input;
    m.output = l.output;
    m.dropout = l.dropout_before;
    m.dropout_kind = l.dropout_kind;
    m.p = l.dropout_p;
    m.per_sample = static_cast<int>(i) >= first_dropout;
    m.kernel = l.kernel;
    m.in_channels = l.in_channels;
    m.in_h = l.in_h;
    m.in_w = l.in_w;
    m.out_channels = l.out_channels;
    m.stride = l.stride;
    m.padding = l.padding;
    m.out_h = l.out_h;
    m.out_w = l.out_w;
    m.rows = l.in_channels * l.kernel * l.kernel;
    m.cols = l.out_channels;
    m.row_tiles = (m.rows + crossbar.tile_rows - 1) / crossbar.tile_rows;
    m.col_tiles = (m.cols + crossbar.tile_cols - 1) / crossbar.tile_cols;
    m.windows = static_cast<std::int64_t>(l.out_h) * l.out_w;
    m.macs = l.macs();
    // Taps inside the map, summed over windows: per axis, the (output position, kernel offset)
    // pairs that land inside it.
    auto inside = [&](int out_size, int in_size) {
      const std::vector<std::int64_t> n = taps_landing(out_size, in_size, l.kernel, l.stride, l.padding);
      return std::accumulate(n.begin(), n.end(), std::int64_t{0});
    };
    m.in_map_rows = m.linear ? m.rows : inside(l.out_h, l.in_h) * inside(l.out_w, l.in_w) * l.in_channels;
    if (l.dropout_before) {
      m.modules_element = m.rows;
      m.modules_spatial = m.linear ? m.rows : l.in_channels;
    }
    out.push_back(m);
  }
  return out;
}

namespace {
// Along one axis, the (output position o, kernel offset k) pairs whose tap x = o stride - padding
// + k lands inside [0, in_size): counted per o, or per x.
std::vector<std::int64_t> count_taps(int out_size, int in_size, int kernel, int stride, int padding, bool per_output) {
  std::vector<std::int64_t> n(static_cast<std::size_t>(std::max(per_output ? out_size : in_size, 0)), 0);
  for (int o = 0; o < out_size; ++o) {
    for (int k = 0; k < kernel; ++k) {
      const int x = o * stride - padding + k;
      if (x >= 0 && x < in_size) ++n[static_cast<std::size_t>(per_output ? o : x)];
    }
  }
  return n;
}
}  // namespace

std::vector<std::int64_t> taps_landing(int out_size, int in_size, int kernel, int stride, int padding) {
  return count_taps(out_size, in_size, kernel, stride, padding, false);
}

std::vector<std::int64_t> taps_inside(int out_size, int in_size, int kernel, int stride, int padding) {
  return count_taps(out_size, in_size, kernel, stride, padding, true);
}

}  // namespace spinbayes
