#include "engine/compiled_model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
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

CompiledModel::CompiledModel(const ModelIR& ir)
    : spec_(ir.spec),
      // The same float the LibTorch path multiplies kept inputs by (inverted dropout).
      dropout_scale_(static_cast<float>(1.0 / (1.0 - ir.spec.p))) {
  ir.validate();
  int c = spec_.channels, h = spec_.height, w = spec_.width_px;
  first_dropout_ = static_cast<int>(ir.layers.size()) - 1;  // the output layer always runs per sample
  for (std::size_t i = 0; i < ir.layers.size(); ++i) {
    const BinaryLayerIR& src = ir.layers[i];
    EngineLayer layer;
    layer.shape = src.shape;
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
    }
    for (int oc = 0; oc < src.shape.out_channels; ++oc) {
      const auto k = static_cast<std::size_t>(oc);
      if (src.shape.output) {
        layer.affine.push_back(fold_output(src.bn_mean[k], src.bn_var[k], src.bn_gamma[k], src.bn_beta[k], src.bn_eps));
      } else {
        layer.thresholds.push_back(
            fold_batch_norm(src.bn_mean[k], src.bn_var[k], src.bn_gamma[k], src.bn_beta[k], src.bn_eps));
      }
    }
    if (!src.shape.output && !src.shape.real_input) {
      const double scales[2] = {1.0, src.shape.dropout_before ? dropout_scale_ : 1.0};
      for (const auto& t : layer.thresholds) layer.dot_sign.push_back(t.flip ? -1 : 1);
      for (int on = 0; on < 2; ++on) {
        for (const auto& t : layer.thresholds) {
          const std::int32_t bound = integer_bound(t, scales[on], src.fan_in());
          layer.dot_bound[on].push_back(t.flip ? -bound : bound);
        }
      }
    }
    if (src.shape.dropout_before) first_dropout_ = std::min(first_dropout_, static_cast<int>(i));
    c = src.shape.out_channels;
    h = src.shape.kind == LayerSpec::Kind::conv ? src.shape.pooled_h() : 1;
    w = src.shape.kind == LayerSpec::Kind::conv ? src.shape.pooled_w() : 1;
    layers_.push_back(std::move(layer));
  }
}

void threshold_windows(const EngineLayer& layer, const std::int32_t* dots, int windows, bool masked, BitMatrix& signs) {
  const int out_c = layer.shape.out_channels;
  const std::int32_t* bound = layer.dot_bound[masked ? 1 : 0].data();
  for (int m = 0; m < windows; ++m) {
    threshold_bits(dots + static_cast<std::size_t>(m) * out_c, layer.dot_sign.data(), bound, out_c, signs.row(m));
  }
}

bool CompiledModel::masked(int index, bool dropout) const {
  return dropout && layers_[static_cast<std::size_t>(index)].shape.dropout_before && spec_.has_dropout();
}

}  // namespace spinbayes
