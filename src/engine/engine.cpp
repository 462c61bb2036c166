#include "engine/engine.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/dropout_mask.h"

namespace spinbayes {

namespace {

// sign(BN(x)) >= 0 as the folded comparison of model_ir.h.
inline bool fires(double pre, const FoldedThreshold& t) { return t.flip ? pre <= t.threshold : pre >= t.threshold; }

// 2x2 max-pool, stride 2, floor, on a channels-last binary map: the max of +-1 values is +1 iff
// any is +1, so pooling is a bitwise OR of the four pixel rows.
BinaryMap max_pool(const BitMatrix& signs, int channels, int h, int w) {
  BinaryMap out;
  out.channels = channels;
  out.height = h / 2;
  out.width = w / 2;
  out.signs = BitMatrix(out.height * out.width, channels);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      BitWord* dst = out.signs.row(y * out.width + x);
      const BitWord* a = signs.row((2 * y) * w + 2 * x);
      const BitWord* b = signs.row((2 * y) * w + 2 * x + 1);
      const BitWord* c = signs.row((2 * y + 1) * w + 2 * x);
      const BitWord* d = signs.row((2 * y + 1) * w + 2 * x + 1);
      for (int k = 0; k < out.signs.words; ++k) dst[k] = a[k] | b[k] | c[k] | d[k];
    }
  }
  return out;
}

// Thresholds pre-activations (out pixels x channels, channels fastest) into a binary map and
// pools it when the layer says so.
template <typename Pre>
BinaryMap threshold_and_pool(const EngineLayer& layer, int out_h, int out_w, Pre pre) {
  const int channels = layer.shape.out_channels;
  BitMatrix signs(out_h * out_w, channels);
  for (int pix = 0; pix < out_h * out_w; ++pix) {
    BitWord* row = signs.row(pix);
    for (int oc = 0; oc < channels; ++oc) {
      if (fires(pre(pix, oc), layer.thresholds[static_cast<std::size_t>(oc)])) {
        row[oc / kBitsPerWord] |= BitWord{1} << (oc % kBitsPerWord);
      }
    }
  }
  if (layer.shape.pool_after) return max_pool(signs, channels, out_h, out_w);
  BinaryMap map;
  map.channels = channels;
  map.height = out_h;
  map.width = out_w;
  map.signs = std::move(signs);
  return map;
}

}  // namespace

Engine::Engine(const ModelIR& ir) : spec_(ir.spec) {
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
    if (src.shape.dropout_before) first_dropout_ = std::min(first_dropout_, static_cast<int>(i));
    c = src.shape.out_channels;
    h = src.shape.kind == LayerSpec::Kind::conv ? src.shape.pooled_h() : 1;
    w = src.shape.kind == LayerSpec::Kind::conv ? src.shape.pooled_w() : 1;
    layers_.push_back(std::move(layer));
  }
}

std::int64_t Engine::binary_macs() const {
  std::int64_t macs = 0;
  for (const auto& l : layers_) {
    if (!l.shape.real_input) macs += l.shape.macs();
  }
  return macs;
}

double Engine::input_scale(int index, bool dropout) const {
  const auto& l = layers_[static_cast<std::size_t>(index)];
  const bool active = dropout && l.shape.dropout_before && spec_.dropout != DropoutKind::none && spec_.p > 0.0;
  // The same float the LibTorch path multiplies kept inputs by (inverted dropout).
  return active ? static_cast<double>(static_cast<float>(1.0 / (1.0 - spec_.p))) : 1.0;
}

BinaryMap Engine::first_layer(const float* pixels) const {
  const EngineLayer& l = layers_.front();
  const int c = l.in_c, h = l.in_h, w = l.in_w, k = l.kernel, pad = l.padding, stride = l.stride;
  const int out_h = l.shape.out_h, out_w = l.shape.out_w, out_c = l.shape.out_channels;
  // Normalized exactly as the LibTorch path: (x - mean) / std in float.
  std::vector<float> x(static_cast<std::size_t>(c) * h * w);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = (pixels[i] - spec_.input_mean) / spec_.input_std;
  std::vector<double> pre(static_cast<std::size_t>(out_h) * out_w * out_c, 0.0);
  for (int oy = 0; oy < out_h; ++oy) {
    for (int ox = 0; ox < out_w; ++ox) {
      double* out = pre.data() + (static_cast<std::size_t>(oy) * out_w + ox) * out_c;
      for (int oc = 0; oc < out_c; ++oc) {
        const float* wt = l.real_weights.data() + static_cast<std::size_t>(oc) * c * k * k;
        double sum = 0.0;
        for (int ic = 0; ic < c; ++ic) {
          for (int ky = 0; ky < k; ++ky) {
            const int y = oy * stride - pad + ky;
            if (y < 0 || y >= h) continue;
            for (int kx = 0; kx < k; ++kx) {
              const int xx = ox * stride - pad + kx;
              if (xx < 0 || xx >= w) continue;
              sum += static_cast<double>(wt[(ic * k + ky) * k + kx]) * x[(static_cast<std::size_t>(ic) * h + y) * w + xx];
            }
          }
        }
        out[oc] = sum;
      }
    }
  }
  return threshold_and_pool(l, out_h, out_w,
                            [&](int pix, int oc) { return pre[static_cast<std::size_t>(pix) * out_c + oc]; });
}

void Engine::apply_masks(int index, BinaryMap& map, std::uint64_t seed, std::uint64_t image,
                         std::uint64_t sample) const {
  const EngineLayer& l = layers_[static_cast<std::size_t>(index)];
  const double p = spec_.p;
  map.keep = BitMatrix(map.height * map.width, map.channels);
  const bool per_channel = spec_.dropout == DropoutKind::spatial && l.shape.kind == LayerSpec::Kind::conv;
  if (per_channel) {
    // Spatial dropout: one draw per channel, held for every pixel of the map.
    std::vector<BitWord> channel_keep(static_cast<std::size_t>(map.keep.words), 0);
    for (int ch = 0; ch < map.channels; ++ch) {
      if (dropout_keeps(seed, image, sample, index, static_cast<std::uint64_t>(ch), p)) {
        channel_keep[static_cast<std::size_t>(ch / kBitsPerWord)] |= BitWord{1} << (ch % kBitsPerWord);
      }
    }
    for (int pix = 0; pix < map.height * map.width; ++pix) {
      std::copy(channel_keep.begin(), channel_keep.end(), map.keep.row(pix));
    }
    return;
  }
  // Element dropout (and every linear layer): one draw per input element, unit = (c * H + y) * W + x.
  for (int y = 0; y < map.height; ++y) {
    for (int x = 0; x < map.width; ++x) {
      BitWord* row = map.keep.row(y * map.width + x);
      for (int ch = 0; ch < map.channels; ++ch) {
        const auto unit = (static_cast<std::uint64_t>(ch) * map.height + y) * map.width + x;
        if (dropout_keeps(seed, image, sample, index, unit, p)) {
          row[ch / kBitsPerWord] |= BitWord{1} << (ch % kBitsPerWord);
        }
      }
    }
  }
}

std::vector<std::int32_t> Engine::layer_dots(int index, const BinaryMap& input, std::uint64_t seed,
                                             std::uint64_t image, std::uint64_t sample, bool dropout) const {
  const EngineLayer& l = layers_[static_cast<std::size_t>(index)];
  Patches patches;
  if (input_scale(index, dropout) != 1.0) {
    BinaryMap masked = input;
    apply_masks(index, masked, seed, image, sample);
    im2col_bits(masked, l.kernel, l.stride, l.padding, patches);
  } else {
    im2col_bits(input, l.kernel, l.stride, l.padding, patches);
  }
  std::vector<std::int32_t> dots(static_cast<std::size_t>(patches.signs.rows) * l.shape.out_channels);
  bgemm(patches.signs, patches.keep, patches.kept, l.weights, dots.data());
  return dots;
}

BinaryMap Engine::layer_output(int index, const std::vector<std::int32_t>& dots, bool dropout) const {
  const EngineLayer& l = layers_[static_cast<std::size_t>(index)];
  const double scale = input_scale(index, dropout);
  const int out_c = l.shape.out_channels;
  return threshold_and_pool(l, l.shape.out_h, l.shape.out_w, [&](int pix, int oc) {
    return dots[static_cast<std::size_t>(pix) * out_c + oc] * scale;
  });
}

BinaryMap Engine::run_prefix(const float* pixels) const {
  BinaryMap map = first_layer(pixels);
  for (int i = 1; i < first_dropout_; ++i) {
    map = layer_output(i, layer_dots(i, map, 0, 0, 0, false), false);
  }
  return map;
}

void Engine::run_suffix(const BinaryMap& prefix, std::uint64_t seed, std::uint64_t image, std::uint64_t sample,
                        bool dropout, float* logits) const {
  const int count = static_cast<int>(layers_.size());
  BinaryMap map;
  const BinaryMap* current = &prefix;
  for (int i = first_dropout_; i < count; ++i) {
    const auto dots = layer_dots(i, *current, seed, image, sample, dropout);
    const EngineLayer& l = layers_[static_cast<std::size_t>(i)];
    if (l.shape.output) {
      const double scale = input_scale(i, dropout);
      for (int oc = 0; oc < l.shape.out_channels; ++oc) {
        const auto& a = l.affine[static_cast<std::size_t>(oc)];
        logits[oc] = static_cast<float>(a.scale * (dots[static_cast<std::size_t>(oc)] * scale) + a.bias);
      }
      return;
    }
    map = layer_output(i, dots, dropout);
    current = &map;
  }
}

McPredictions Engine::predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout) const {
  if (samples < 1) throw Error("samples: must be >= 1");
  if (images.c != spec_.channels || images.h != spec_.height || images.w != spec_.width_px) {
    throw Error(images.name + ": image shape " + std::to_string(images.c) + "x" + std::to_string(images.h) + "x" +
                std::to_string(images.w) + " does not match the model's input");
  }
  const bool stochastic = dropout && spec_.dropout != DropoutKind::none && spec_.p > 0.0;
  if (!stochastic) samples = 1;
  const int classes = spec_.classes;
  McPredictions mc;
  mc.samples = samples;
  mc.inputs = images.n;
  mc.classes = classes;
  mc.probs.resize(static_cast<std::size_t>(samples) * images.n * classes);
#pragma omp parallel for schedule(dynamic, 8)
  for (int i = 0; i < images.n; ++i) {
    const BinaryMap prefix = run_prefix(images.image(i));
    std::vector<float> logits(static_cast<std::size_t>(classes));
    for (int t = 0; t < samples; ++t) {
      run_suffix(prefix, seed, static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(t), stochastic,
                 logits.data());
      // Softmax in double, stored as float.
      const double top = *std::max_element(logits.begin(), logits.end());
      double total = 0.0;
      std::vector<double> e(static_cast<std::size_t>(classes));
      for (int k = 0; k < classes; ++k) total += e[static_cast<std::size_t>(k)] = std::exp(logits[static_cast<std::size_t>(k)] - top);
      float* out = mc.probs.data() + (static_cast<std::size_t>(t) * images.n + i) * classes;
      for (int k = 0; k < classes; ++k) out[k] = static_cast<float>(e[static_cast<std::size_t>(k)] / total);
    }
  }
  return mc;
}

}  // namespace spinbayes
