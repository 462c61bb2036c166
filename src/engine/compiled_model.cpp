#include "engine/compiled_model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "engine/narrow_conv.h"
#include "engine/threshold.h"

namespace spinbayes {

namespace {

// The folded threshold as a bound on the integer dot product d, whose pre-activation is d * scale:
// the smallest d with d * scale >= threshold (or, flipped, the largest d with d * scale <=
// threshold), clamped just outside the reachable range [-fan_in, fan_in].
std::int32_t integer_bound(const FoldedThreshold& t, double scale, int fan_in) {
  const double lo = -fan_in - 1.0, hi = fan_in + 1.0;
  double d = std::clamp(t.flip ? std::floor(t.threshold / scale) : std::ceil(t.threshold / scale), lo, hi);
  // Settle the rounding of threshold / scale against the exact comparison the float path makes.
  if (!t.flip) {
    while (d - 1 >= lo && fires((d - 1) * scale, t)) --d;
    while (d < hi && !fires(d * scale, t)) ++d;
  } else {
    while (d + 1 <= hi && fires((d + 1) * scale, t)) ++d;
    while (d > lo && !fires(d * scale, t)) --d;
  }
  return static_cast<std::int32_t>(d);
}

}  // namespace

CompiledModel::CompiledModel(const ModelIR& ir) : spec_(ir.spec) {
  ir.validate();
  for (std::size_t i = 0; i < ir.layers.size(); ++i) {
    const BinaryLayerIR& src = ir.layers[i];
    EngineLayer layer;
    layer.shape = src.shape;
    const int c = src.shape.src_c, h = src.shape.src_h, w = src.shape.src_w;
    layer.in_c = c;
    layer.in_h = h;
    layer.in_w = w;
    if (src.shape.kind == LayerSpec::Kind::conv) {
      layer.kernel = src.shape.kernel;
      layer.stride = src.shape.stride;
      layer.padding = src.shape.padding;
    } else {
      // A linear layer on a C x H x W map is a convolution with an H x W kernel and no padding:
      // LibTorch's flatten order (c, y, x) is the weight order (c, ky, kx) of that convolution.
      if (h != w) throw Error("model IR: linear layer " + std::to_string(i) + " follows a non-square map");
      layer.kernel = h;
    }
    if (src.shape.real_input) {
      layer.real_weights.assign(src.weights.begin(), src.weights.end());
    } else {
      layer.weights = pack_weights(src.weights.data(), src.shape.out_channels, c, layer.kernel);
      layer.packed_weights = pack_operand(layer.weights);
      if (narrow_conv_runs(c, layer.kernel, layer.stride)) pack_narrow_lanes(layer.weights, c, layer.kernel, layer.packed_weights);
    }
    const bool shortcut = src.shape.shortcut >= 0;
    std::vector<FoldedThreshold> low;  // a residual block's threshold for shortcut bit 0
    for (int oc = 0; oc < src.shape.out_channels; ++oc) {
      const auto k = static_cast<std::size_t>(oc);
      if (src.shape.output) {
        layer.affine.push_back(fold_output(src.bn_mean[k], src.bn_var[k], src.bn_gamma[k], src.bn_beta[k], src.bn_eps));
      } else {
        layer.thresholds.push_back(fold_batch_norm(src.bn_mean[k], src.bn_var[k], src.bn_gamma[k], src.bn_beta[k],
                                                   src.bn_eps, shortcut ? 1.0 : 0.0));
        if (shortcut) low.push_back(fold_batch_norm(src.bn_mean[k], src.bn_var[k], src.bn_gamma[k], src.bn_beta[k], src.bn_eps, -1.0));
      }
    }
    // The same float the LibTorch path multiplies kept inputs by (inverted dropout).
    layer.dropout_scale = src.shape.dropout_before ? static_cast<float>(1.0 / (1.0 - src.shape.dropout_p)) : 1.0f;
    any_dropout_ = any_dropout_ || src.shape.dropout_before;
    if (!src.shape.output && !src.shape.real_input) {
      const double scales[2] = {1.0, layer.dropout_scale};
      for (const auto& t : layer.thresholds) layer.dot_sign.push_back(t.flip ? -1 : 1);
      for (int on = 0; on < 2; ++on) {
        for (const auto& [folded, bounds] : {std::pair{&layer.thresholds, &layer.dot_bound[on]}, std::pair{&low, &layer.low_bound[on]}}) {
          for (const auto& t : *folded) {
            const std::int32_t bound = integer_bound(t, scales[on], src.fan_in());
            bounds->push_back(t.flip ? -bound : bound);
          }
        }
      }
    }
    layers_.push_back(std::move(layer));
  }
  last_use_.assign(layers_.size() + 1, -1);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& l = layers_[i].shape;
    last_use_[static_cast<std::size_t>(l.source)] = static_cast<int>(i);
    if (l.shortcut >= 0) last_use_[static_cast<std::size_t>(l.shortcut)] = static_cast<int>(i);
  }
  first_dropout_ = prefix_end([&] {
    std::vector<LayerSpec> shapes;
    for (const auto& l : ir.layers) shapes.push_back(l.shape);
    return shapes;
  }());
}

const std::int32_t* EngineLayer::bounds(bool masked, const BitWord* shortcut, std::vector<std::int32_t>& scratch) const {
  const std::vector<std::int32_t>& high = dot_bound[masked ? 1 : 0];
  if (!has_shortcut()) return high.data();
  if (shortcut == nullptr) throw Error("layer with a residual shortcut: no shortcut map given");
  const std::vector<std::int32_t>& low = low_bound[masked ? 1 : 0];
  scratch.resize(high.size());
  for (std::size_t oc = 0; oc < high.size(); ++oc) {
    // Branch-free: the bits of a decision's selection are as random as the map's.
    const auto take_high = -static_cast<std::int32_t>((shortcut[oc / kBitsPerWord] >> (oc % kBitsPerWord)) & 1u);
    scratch[oc] = low[oc] ^ ((high[oc] ^ low[oc]) & take_high);
  }
  return scratch.data();
}

void threshold_windows(const EngineLayer& layer, const std::int32_t* dots, int windows, bool masked, BitMatrix& signs,
                       const BitMatrix* shortcut) {
  const int on = masked ? 1 : 0;
  if (layer.has_shortcut() && shortcut == nullptr) throw Error("layer with a residual shortcut: no shortcut map given");
  threshold_rows(dots, windows, layer.shape.out_channels, layer.dot_sign.data(), layer.dot_bound[on].data(),
                 layer.has_shortcut() ? layer.low_bound[on].data() : nullptr, layer.has_shortcut() ? shortcut : nullptr,
                 signs);
}

bool CompiledModel::masked(int index, bool dropout) const {
  return dropout && layers_[static_cast<std::size_t>(index)].shape.dropout_before;
}

}  // namespace spinbayes
