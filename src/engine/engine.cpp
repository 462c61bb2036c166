#include "engine/engine.h"

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

// A layer's thresholded output map (out pixels x channels), max-pooled when the layer says so.
BinaryMap pooled(const EngineLayer& layer, BitMatrix signs) {
  if (layer.shape.pool_after) return max_pool(signs, layer.shape.out_channels, layer.shape.out_h, layer.shape.out_w);
  BinaryMap map;
  map.channels = layer.shape.out_channels;
  map.height = layer.shape.out_h;
  map.width = layer.shape.out_w;
  map.signs = std::move(signs);
  return map;
}

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

// Thresholds a layer's outputs (out pixels x channels, channels fastest) into a binary map and
// pools it when the layer says so; fire(pix, oc) is the sense decision.
template <typename Fire>
BinaryMap threshold_and_pool(const EngineLayer& layer, int out_h, int out_w, Fire fire) {
  const int channels = layer.shape.out_channels;
  BitMatrix signs(out_h * out_w, channels);
  for (int pix = 0; pix < out_h * out_w; ++pix) {
    BitWord* row = signs.row(pix);
    for (int oc = 0; oc < channels; ++oc) {
      if (fire(pix, oc)) {
        row[oc / kBitsPerWord] |= BitWord{1} << (oc % kBitsPerWord);
      }
    }
  }
  return pooled(layer, std::move(signs));
}

}  // namespace

Engine::Engine(const ModelIR& ir)
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

bool Engine::masked(int index, bool dropout) const {
  return dropout && layers_[static_cast<std::size_t>(index)].shape.dropout_before && spec_.has_dropout();
}

double Engine::input_scale(int index, bool dropout) const { return masked(index, dropout) ? dropout_scale_ : 1.0; }

BinaryMap Engine::first_layer(const float* pixels) const {
  const EngineLayer& l = layers_.front();
  const int c = l.in_c, h = l.in_h, w = l.in_w, k = l.kernel, pad = l.padding, stride = l.stride;
  const int out_h = l.shape.out_h, out_w = l.shape.out_w, out_c = l.shape.out_channels;
  // Normalized exactly as the LibTorch path: (x - mean) / std in float.
  std::vector<float> x(static_cast<std::size_t>(c) * h * w);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = (pixels[i] - spec_.input_mean) / spec_.input_std;
  // Real input times +-1 weights, accumulated plane by plane (out_c x out_h x out_w) so that the
  // inner loop runs along a row of the map and vectorizes.
  std::vector<float> pre(static_cast<std::size_t>(out_c) * out_h * out_w, 0.0f);
  for (int oc = 0; oc < out_c; ++oc) {
    float* plane = pre.data() + static_cast<std::size_t>(oc) * out_h * out_w;
    for (int ic = 0; ic < c; ++ic) {
      for (int ky = 0; ky < k; ++ky) {
        for (int kx = 0; kx < k; ++kx) {
          const float wt = l.real_weights[((static_cast<std::size_t>(oc) * c + ic) * k + ky) * k + kx];
          // Output columns whose tap stays inside the row: 0 <= ox * stride - pad + kx < w.
          const int ox_begin = std::max(0, (pad - kx + stride - 1) / stride);
          const int ox_end = std::min(out_w, (w - 1 + pad - kx) / stride + 1);
          for (int oy = 0; oy < out_h; ++oy) {
            const int y = oy * stride - pad + ky;
            if (y < 0 || y >= h) continue;
            const float* in = x.data() + (static_cast<std::size_t>(ic) * h + y) * w - pad + kx;
            float* out = plane + static_cast<std::size_t>(oy) * out_w;
            for (int ox = ox_begin; ox < ox_end; ++ox) out[ox] += wt * in[ox * stride];
          }
        }
      }
    }
  }
  const std::size_t plane_size = static_cast<std::size_t>(out_h) * out_w;
  return threshold_and_pool(l, out_h, out_w, [&](int pix, int oc) {
    return fires(pre[static_cast<std::size_t>(oc) * plane_size + static_cast<std::size_t>(pix)],
                 l.thresholds[static_cast<std::size_t>(oc)]);
  });
}

void Engine::apply_element_masks(int index, BinaryMap& map, std::uint64_t seed, std::uint64_t image,
                         std::uint64_t sample) const {
  map.keep = BitMatrix(map.height * map.width, map.channels);
  const DropoutDraws draws(seed, image, sample, index, spec_.p);
  // One draw per input element, unit = (c * H + y) * W + x: for one pixel, the channels' units are
  // H * W apart.
  const auto plane = static_cast<std::uint64_t>(map.height) * map.width;
  for (int pix = 0; pix < map.height * map.width; ++pix) {
    BitWord* row = map.keep.row(pix);
    for (int word = 0; word < map.keep.words; ++word) {
      const int first = word * kBitsPerWord;
      row[word] = draws.keep_bits(static_cast<std::uint64_t>(first) * plane + static_cast<std::uint64_t>(pix), plane,
                                  std::min(kBitsPerWord, map.channels - first));
    }
  }
}

void Engine::channel_keep(int index, std::uint64_t seed, std::uint64_t image, std::uint64_t sample,
                          std::vector<BitWord>& keep) const {
  const EngineLayer& l = layers_[static_cast<std::size_t>(index)];
  keep.assign(static_cast<std::size_t>(words_for_bits(l.in_c)), 0);
  const DropoutDraws draws(seed, image, sample, index, spec_.p);
  for (int ch = 0; ch < l.in_c; ++ch) {
    if (draws.keeps(static_cast<std::uint64_t>(ch))) {
      keep[static_cast<std::size_t>(ch / kBitsPerWord)] |= BitWord{1} << (ch % kBitsPerWord);
    }
  }
}

bool Engine::channel_masked(int index, bool dropout) const {
  return !masked(index, dropout) ||
         (spec_.dropout == DropoutKind::spatial && layers_[static_cast<std::size_t>(index)].shape.kind ==
                                                       LayerSpec::Kind::conv);
}

void Engine::channel_dots(int index, const BinaryMap& map, std::uint64_t seed, std::uint64_t image,
                          std::uint64_t sample, bool dropout, LayerScratch& scratch, std::int32_t* dots) const {
  const EngineLayer& l = layers_[static_cast<std::size_t>(index)];
  if (masked(index, dropout)) {
    channel_keep(index, seed, image, sample, scratch.channel_keep);
  } else {
    scratch.channel_keep.clear();  // every channel present
  }
  channel_masked_conv(map, scratch.channel_keep, l.kernel, l.stride, l.padding, l.weights, l.packed_weights,
                      scratch.channel, dots);
}

std::vector<std::int32_t> Engine::layer_dots(int index, const BinaryMap& input, std::uint64_t seed,
                                             std::uint64_t image, std::uint64_t sample, bool dropout) const {
  LayerScratch scratch;
  layer_dots(index, input, seed, image, sample, dropout, scratch);
  return std::move(scratch.dots);
}

void Engine::layer_dots(int index, const BinaryMap& input, std::uint64_t seed, std::uint64_t image,
                        std::uint64_t sample, bool dropout, LayerScratch& scratch) const {
  const EngineLayer& l = layers_[static_cast<std::size_t>(index)];
  std::vector<std::int32_t>& dots = scratch.dots;
  if (channel_masked(index, dropout)) {
    dots.resize(static_cast<std::size_t>(l.shape.out_h) * l.shape.out_w * l.shape.out_channels);
    channel_dots(index, input, seed, image, sample, dropout, scratch, dots.data());
    return;
  }
  Patches& patches = scratch.patches;
  if (masked(index, dropout)) {
    BinaryMap masked = input;
    apply_element_masks(index, masked, seed, image, sample);
    im2col_bits(masked, l.kernel, l.stride, l.padding, patches);
  } else {
    im2col_bits(input, l.kernel, l.stride, l.padding, patches);
  }
  dots.resize(static_cast<std::size_t>(patches.signs.rows) * l.shape.out_channels);  // every entry written below
  bgemm(patches.signs, patches.keep, patches.kept, l.weights, l.packed_weights, dots.data());
}

BinaryMap Engine::layer_output(int index, const std::int32_t* dots, bool dropout) const {
  const EngineLayer& l = layers_[static_cast<std::size_t>(index)];
  const int out_c = l.shape.out_channels, out_h = l.shape.out_h, out_w = l.shape.out_w;
  const std::int32_t* bound = l.dot_bound[masked(index, dropout) ? 1 : 0].data();
  BitMatrix signs(out_h * out_w, out_c);
  for (int pix = 0; pix < out_h * out_w; ++pix) {
    threshold_bits(dots + static_cast<std::size_t>(pix) * out_c, l.dot_sign.data(), bound, out_c, signs.row(pix));
  }
  return pooled(l, std::move(signs));
}

void Engine::run_layer(int i, std::vector<BinaryMap>& maps, std::uint64_t seed, std::uint64_t image,
                       int first_sample, bool dropout, LayerScratch& scratch, float* logits, LayerEvents& events) const {
  const EngineLayer& l = layers_[static_cast<std::size_t>(i)];
  const int n = static_cast<int>(maps.size());
  const bool mask = masked(i, dropout);
  auto sample = [&](int s) { return static_cast<std::uint64_t>(first_sample + s); };
  const int out_c = l.shape.out_channels;
  std::vector<std::int32_t>& dots = scratch.dots;
  Patches& patches = scratch.patches;
  const int windows = l.shape.out_h * l.shape.out_w;  // im2col's output pixels (1 for a linear layer)
  const std::size_t per_sample = static_cast<std::size_t>(windows) * out_c;
  dots.resize(per_sample * static_cast<std::size_t>(n));
  if (chip_ == nullptr && channel_masked(i, dropout)) {
    // The ideal engine under channel masks (or none): one sample at a time, keep rows shared.
    for (int s = 0; s < n; ++s) {
      channel_dots(i, maps[static_cast<std::size_t>(s)], seed, image, sample(s), dropout, scratch,
                   dots.data() + static_cast<std::size_t>(s) * per_sample);
    }
  } else {
    const bool patch_masks = mask && chip_ != nullptr && chip_->patch_level_masks(i);
    if (mask && !patch_masks) {
      for (int s = 0; s < n; ++s) {
        BinaryMap& map = maps[static_cast<std::size_t>(s)];
        if (chip_ != nullptr) {
          chip_->mask_map(i, map, seed, image, sample(s), events);
        } else {
          apply_element_masks(i, map, seed, image, sample(s));
        }
      }
    }
    im2col_bits(maps, l.kernel, l.stride, l.padding, patches);
    if (patch_masks) {
      for (int s = 0; s < n; ++s) chip_->mask_patches(i, patches, s * windows, seed, image, sample(s), events);
    }
    if (chip_ != nullptr) {
      bgemm(patches.signs, patches.keep, patches.kept, chip_->weights(i), chip_->packed_weights(i), dots.data());
    } else {
      bgemm(patches.signs, patches.keep, patches.kept, l.weights, l.packed_weights, dots.data());
    }
  }
  if (l.shape.output) {
    const double scale = input_scale(i, dropout);
    std::vector<double> sums(static_cast<std::size_t>(out_c));
    for (int s = 0; s < n; ++s) {
      const std::int32_t* d = dots.data() + static_cast<std::size_t>(s) * per_sample;
      if (chip_ != nullptr) {
        chip_->read_out(i, patches, s * windows, d, sums.data(), events);
      } else {
        for (int oc = 0; oc < out_c; ++oc) sums[static_cast<std::size_t>(oc)] = d[oc];
      }
      float* out = logits + static_cast<std::size_t>(s) * out_c;
      for (int oc = 0; oc < out_c; ++oc) {
        const auto& a = l.affine[static_cast<std::size_t>(oc)];
        out[oc] = static_cast<float>(a.scale * (sums[static_cast<std::size_t>(oc)] * scale) + a.bias);
      }
    }
    return;
  }
  for (int s = 0; s < n; ++s) {
    const std::int32_t* d = dots.data() + static_cast<std::size_t>(s) * per_sample;
    BinaryMap& map = maps[static_cast<std::size_t>(s)];
    map = chip_ != nullptr ? pooled(l, chip_->sense(i, patches, s * windows, d, mask, events))
                           : layer_output(i, d, dropout);
  }
}

BinaryMap Engine::run_prefix(const float* pixels, LayerEvents* events) const {
  std::vector<BinaryMap> maps(1);
  maps[0] = first_layer(pixels);
  LayerEvents scratch;
  if (events != nullptr) events[0].digital_macs += static_cast<std::uint64_t>(layers_.front().shape.macs());
  LayerScratch buffers;
  for (int i = 1; i < first_dropout_; ++i) {
    run_layer(i, maps, 0, 0, 0, false, buffers, nullptr, events != nullptr ? events[i] : scratch);
  }
  return std::move(maps[0]);
}

void Engine::run_suffix(const BinaryMap& prefix, std::uint64_t seed, std::uint64_t image, int first_sample,
                        int count, bool dropout, float* logits, LayerEvents* events) const {
  const int layer_count = static_cast<int>(layers_.size());
  // Samples per batch: enough rows for an efficient GEMM, few enough to stay in cache.
  const int pixels = std::max(1, layers_[static_cast<std::size_t>(first_dropout_)].shape.out_h *
                                     layers_[static_cast<std::size_t>(first_dropout_)].shape.out_w);
  const int batch = std::max(1, 512 / pixels);
  LayerScratch buffers;
  std::vector<BinaryMap> maps;
  LayerEvents scratch;
  for (int begin = 0; begin < count; begin += batch) {
    const int n = std::min(batch, count - begin);
    maps.assign(static_cast<std::size_t>(n), prefix);
    for (int i = first_dropout_; i < layer_count; ++i) {
      run_layer(i, maps, seed, image, first_sample + begin, dropout, buffers,
                logits + static_cast<std::size_t>(begin) * spec_.classes, events != nullptr ? events[i] : scratch);
    }
  }
}

McPredictions Engine::predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                              Ledger* ledger) const {
  if (samples < 1) throw Error("samples: must be >= 1");
  spec_.check_input(images.name, images.c, images.h, images.w);
  const bool stochastic = dropout && spec_.has_dropout();
  if (!stochastic) samples = 1;
  const int classes = spec_.classes;
  McPredictions mc;
  mc.samples = samples;
  mc.inputs = images.n;
  mc.classes = classes;
  mc.probs.resize(static_cast<std::size_t>(samples) * images.n * classes);
  const std::size_t layer_count = layers_.size();
  // Event counts per thread, added up at the end: integer sums, so the total does not depend on
  // how images were shared out.
  std::vector<std::vector<LayerEvents>> thread_events;
#pragma omp parallel
  {
    std::vector<LayerEvents> events(ledger != nullptr ? layer_count : 0);
#pragma omp for schedule(dynamic, 8)
  for (int i = 0; i < images.n; ++i) {
    LayerEvents* ev = ledger != nullptr ? events.data() : nullptr;
    const BinaryMap prefix = run_prefix(images.image(i), ev);
    std::vector<float> logits(static_cast<std::size_t>(samples) * classes);
    run_suffix(prefix, seed, static_cast<std::uint64_t>(i), 0, samples, stochastic, logits.data(), ev);
    std::vector<double> e(static_cast<std::size_t>(classes));
    for (int t = 0; t < samples; ++t) {
      // Softmax in double, stored as float.
      const float* z = logits.data() + static_cast<std::size_t>(t) * classes;
      const double top = *std::max_element(z, z + classes);
      double total = 0.0;
      for (int k = 0; k < classes; ++k) total += e[static_cast<std::size_t>(k)] = std::exp(z[k] - top);
      float* out = mc.probs.data() + (static_cast<std::size_t>(t) * images.n + i) * classes;
      for (int k = 0; k < classes; ++k) out[k] = static_cast<float>(e[static_cast<std::size_t>(k)] / total);
    }
  }
#pragma omp critical
    thread_events.push_back(std::move(events));
  }
  if (ledger != nullptr) {
    ledger->images += static_cast<std::uint64_t>(images.n);
    ledger->samples = samples;
    if (ledger->layers.size() < layer_count) ledger->layers.resize(layer_count);
    for (const auto& events : thread_events) {
      for (std::size_t k = 0; k < events.size(); ++k) ledger->layers[k] += events[k];
    }
  }
  return mc;
}

}  // namespace spinbayes
