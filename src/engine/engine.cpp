#include "engine/engine.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "engine/bgemm.h"
#include "engine/ideal_backend.h"
#include "engine/narrow_conv.h"

namespace spinbayes {

namespace {

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

Engine::Engine(const ModelIR& ir) : model_(std::make_shared<const CompiledModel>(ir)), backend_(ideal_backend(model_)) {}

Engine::Engine(std::shared_ptr<const CompiledModel> model, EngineBackend backend)
    : model_(std::move(model)), backend_(std::move(backend)) {
  if (model_ == nullptr || backend_.masks == nullptr || backend_.arrays == nullptr) {
    throw Error("engine: a model and both parts of a backend are needed");
  }
}

BinaryMap Engine::first_layer(const float* pixels) const {
  const EngineLayer& l = layers().front();
  const int c = l.in_c, h = l.in_h, w = l.in_w, k = l.kernel, pad = l.padding, stride = l.stride;
  const int out_h = l.shape.out_h, out_w = l.shape.out_w, out_c = l.shape.out_channels;
  // Normalized exactly as the LibTorch path: (x - mean) / std in float.
  std::vector<float> x(static_cast<std::size_t>(c) * h * w);
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = (pixels[i] - spec().input_mean[i / plane]) / spec().input_std[i / plane];
  }
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

void Engine::draw_channel_keep(const MaskKey& key, bool mask, LayerScratch& scratch, LayerEvents& events) const {
  if (mask) {
    backend_.masks->channel_keep(key, scratch.channel_keep, events);
  } else {
    scratch.channel_keep.clear();  // every channel present
  }
}

PatchRows Engine::channel_pass(int index, const BinaryMap& map, const MaskKey& key, bool mask, LayerScratch& scratch,
                               std::int32_t* dots, LayerEvents& events) const {
  const EngineLayer& l = model_->layer(index);
  draw_channel_keep(key, mask, scratch, events);
  const ArrayStage& arrays = *backend_.arrays;
  if (!arrays.reads_patch_rows()) {
    channel_masked_dots(map, scratch.channel_keep, l.kernel, l.stride, l.padding, arrays.weights(index),
                        arrays.packed_weights(index), scratch.channel, dots);
    static const Patches no_patches;
    return no_patches;
  }
  channel_masked_conv(map, scratch.channel_keep, l.kernel, l.stride, l.padding, arrays.weights(index),
                      arrays.packed_weights(index), scratch.channel, dots);
  const ChannelConvScratch& c = scratch.channel;
  return {c.patches.signs, KeepRows(c.rectangle_keeps, c.last().keep_index), c.last().kept.data()};
}

PatchRows Engine::batch_pass(int index, std::span<BinaryMap> maps, const MaskKey& key, MaskGrain grain,
                             LayerScratch& scratch, std::int32_t* dots, LayerEvents& events) const {
  const EngineLayer& l = model_->layer(index);
  const MaskSource& masks = *backend_.masks;
  auto sample_key = [&](std::size_t s) { return MaskKey{key.seed, key.image, key.sample + s, key.layer}; };
  if (grain == MaskGrain::element) {
    for (std::size_t s = 0; s < maps.size(); ++s) masks.mask_map(sample_key(s), maps[s], events);
  }
  Patches& patches = scratch.patches;
  im2col_bits(std::span<const BinaryMap>(maps), l.kernel, l.stride, l.padding, patches);
  if (grain == MaskGrain::window) {
    const int windows = patches.out_h * patches.out_w;
    for (std::size_t s = 0; s < maps.size(); ++s) {
      masks.mask_patches(sample_key(s), patches, static_cast<int>(s) * windows, events);
    }
  }
  const ArrayStage& arrays = *backend_.arrays;
  bgemm(patches.signs, patches.keep, patches.kept, arrays.weights(index), arrays.packed_weights(index), dots);
  return {patches.signs, KeepRows(patches.keep), patches.kept.data()};
}

std::vector<std::int32_t> Engine::layer_dots(const BinaryMap& input, const MaskKey& key, bool dropout) const {
  LayerScratch scratch;
  layer_dots(input, key, dropout, scratch);
  return std::move(scratch.dots);
}

void Engine::layer_dots(const BinaryMap& input, const MaskKey& key, bool dropout, LayerScratch& scratch) const {
  const int index = key.layer;
  const EngineLayer& l = model_->layer(index);
  const bool mask = model_->masked(index, dropout);
  const MaskGrain g = grain(index, mask);
  LayerEvents events;
  scratch.dots.resize(static_cast<std::size_t>(l.shape.out_h) * l.shape.out_w * l.shape.out_channels);
  if (g == MaskGrain::channel) {
    channel_pass(index, input, key, mask, scratch, scratch.dots.data(), events);
  } else {
    BinaryMap masked = input;
    batch_pass(index, std::span<BinaryMap>(&masked, 1), key, g, scratch, scratch.dots.data(), events);
  }
}

BinaryMap Engine::layer_output(int index, const std::int32_t* dots, bool dropout, const BinaryMap* shortcut) const {
  const EngineLayer& l = model_->layer(index);
  BitMatrix signs(l.shape.out_h * l.shape.out_w, l.shape.out_channels);
  threshold_windows(l, dots, signs.rows, model_->masked(index, dropout), signs,
                    shortcut != nullptr ? &shortcut->signs : nullptr);
  return pooled(l, std::move(signs));
}

bool Engine::fuses_sense(int index) const {
  const EngineLayer& l = model_->layer(index);
  return backend_.arrays->senses_exact_thresholds() && !l.shape.output && l.shape.kind == LayerSpec::Kind::conv &&
         pointwise_signs_run(l.in_c, l.kernel, l.stride, l.padding);
}

BinaryMap Engine::channel_sample(int index, const BinaryMap& map, const MaskKey& key, bool mask, const BitMatrix* shortcut,
                                 LayerScratch& scratch, std::int32_t* dots, LayerEvents& events) const {
  const EngineLayer& l = model_->layer(index);
  const ArrayStage& arrays = *backend_.arrays;
  const int windows = l.shape.out_h * l.shape.out_w;
  if (fuses_sense(index)) {
    if (l.has_shortcut() && shortcut == nullptr) throw Error("layer with a residual shortcut: no shortcut map given");
    draw_channel_keep(key, mask, scratch, events);
    const int on = mask ? 1 : 0;
    BitMatrix signs(windows, l.shape.out_channels);
    pointwise_signs(map, scratch.channel_keep, l.stride, arrays.weights(index), arrays.packed_weights(index),
                    l.dot_sign.data(), l.dot_bound[on].data(), l.has_shortcut() ? l.low_bound[on].data() : nullptr,
                    l.has_shortcut() ? shortcut : nullptr, scratch.channel.narrow, signs);
    return pooled(l, std::move(signs));
  }
  const PatchRows rows = channel_pass(index, map, key, mask, scratch, dots, events);
  BitMatrix signs(windows, l.shape.out_channels);
  arrays.sense(index, rows, 0, windows, dots, mask, shortcut, signs, events);
  return pooled(l, std::move(signs));
}

BinaryMap Engine::hidden_layer(const BinaryMap& input, const MaskKey& key, bool dropout, const BinaryMap* shortcut,
                               LayerScratch& scratch) const {
  const int index = key.layer;
  const EngineLayer& l = model_->layer(index);
  if (l.shape.output) throw Error("engine: layer " + std::to_string(index) + " is the output layer, not a hidden one");
  const bool mask = model_->masked(index, dropout);
  const MaskGrain g = grain(index, mask);
  const int windows = l.shape.out_h * l.shape.out_w;
  LayerEvents events;
  scratch.dots.resize(static_cast<std::size_t>(windows) * l.shape.out_channels);
  const BitMatrix* select = shortcut != nullptr ? &shortcut->signs : nullptr;
  if (g == MaskGrain::channel) return channel_sample(index, input, key, mask, select, scratch, scratch.dots.data(), events);
  BinaryMap masked = input;
  const PatchRows rows = batch_pass(index, std::span<BinaryMap>(&masked, 1), key, g, scratch, scratch.dots.data(), events);
  BitMatrix signs(windows, l.shape.out_channels);
  backend_.arrays->sense(index, rows, 0, windows, scratch.dots.data(), mask, select, signs, events);
  return pooled(l, std::move(signs));
}

void Engine::run_layer(std::vector<BinaryMap>& maps, const std::vector<BinaryMap>* shortcut, const MaskKey& first,
                       bool dropout, LayerScratch& scratch, float* logits, LayerEvents& events) const {
  const int i = first.layer;
  const EngineLayer& l = model_->layer(i);
  const ArrayStage& arrays = *backend_.arrays;
  const int n = static_cast<int>(maps.size());
  const bool mask = model_->masked(i, dropout);
  const MaskGrain g = grain(i, mask);
  const int out_c = l.shape.out_channels;
  const int windows = l.shape.out_h * l.shape.out_w;  // im2col's output pixels (1 for a linear layer)
  const std::size_t per_sample = static_cast<std::size_t>(windows) * out_c;
  std::vector<std::int32_t>& dots = scratch.dots;
  dots.resize(per_sample * static_cast<std::size_t>(n));
  const double scale = model_->input_scale(i, dropout);
  std::vector<double> sums(l.shape.output ? static_cast<std::size_t>(out_c) : 0);
  // Sample s's output from its dots, read from windows [row, row + windows) of `rows`.
  auto finish = [&](int s, const PatchRows& rows, int row) {
    const std::int32_t* d = dots.data() + static_cast<std::size_t>(s) * per_sample;
    if (l.shape.output) {
      arrays.read_out(i, rows, row, d, sums.data(), events);
      float* out = logits + static_cast<std::size_t>(s) * out_c;
      for (int oc = 0; oc < out_c; ++oc) {
        const auto& a = l.affine[static_cast<std::size_t>(oc)];
        out[oc] = static_cast<float>(a.scale * (sums[static_cast<std::size_t>(oc)] * scale) + a.bias);
      }
      return;
    }
    BitMatrix signs(windows, out_c);
    arrays.sense(i, rows, row, windows, d, mask, shortcut != nullptr ? &(*shortcut)[static_cast<std::size_t>(s)].signs : nullptr,
                 signs, events);
    maps[static_cast<std::size_t>(s)] = pooled(l, std::move(signs));
  };
  if (g == MaskGrain::channel) {
    // One sample at a time, keep rows shared by the windows of each rectangle of in-map taps.
    for (int s = 0; s < n; ++s) {
      const MaskKey key{first.seed, first.image, first.sample + static_cast<std::uint64_t>(s), i};
      BinaryMap& map = maps[static_cast<std::size_t>(s)];
      std::int32_t* d = dots.data() + static_cast<std::size_t>(s) * per_sample;
      if (l.shape.output) {
        finish(s, channel_pass(i, map, key, mask, scratch, d, events), 0);
      } else {
        map = channel_sample(i, map, key, mask, shortcut != nullptr ? &(*shortcut)[static_cast<std::size_t>(s)].signs : nullptr,
                             scratch, d, events);
      }
    }
    return;
  }
  const PatchRows rows = batch_pass(i, std::span<BinaryMap>(maps), first, g, scratch, dots.data(), events);
  for (int s = 0; s < n; ++s) finish(s, rows, s * windows);
}

void Engine::run_layers(std::vector<std::vector<BinaryMap>>& maps, int begin, int end, const MaskKey& first, bool dropout,
                        LayerScratch& scratch, float* logits, LayerEvents* events) const {
  LayerEvents unused;
  for (int i = begin; i < end; ++i) {
    const LayerSpec& l = layers()[static_cast<std::size_t>(i)].shape;
    const auto source = static_cast<std::size_t>(l.source);
    // The layer's input maps become its outputs: a map another layer still reads is copied.
    std::vector<BinaryMap> run;
    if (model_->last_use(l.source) == i && l.shortcut != l.source) {
      run = std::move(maps[source]);
    } else {
      run = maps[source];
    }
    const std::vector<BinaryMap>* shortcut = l.shortcut >= 0 ? &maps[static_cast<std::size_t>(l.shortcut)] : nullptr;
    run_layer(run, shortcut, MaskKey{first.seed, first.image, first.sample, i}, dropout, scratch, logits,
              events != nullptr ? events[i] : unused);
    if (l.shortcut >= 0 && model_->last_use(l.shortcut) == i) maps[static_cast<std::size_t>(l.shortcut)].clear();
    maps[static_cast<std::size_t>(i) + 1] = std::move(run);
  }
}

BinaryMap Engine::run_prefix(const float* pixels, LayerEvents* events) const {
  std::vector<std::vector<BinaryMap>> maps(layers().size() + 1);
  maps[1].push_back(first_layer(pixels));
  if (events != nullptr) events[0].digital_macs += static_cast<std::uint64_t>(layers().front().shape.macs());
  LayerScratch buffers;
  const int end = model_->first_dropout_layer();
  run_layers(maps, 1, end, MaskKey{}, false, buffers, nullptr, events);
  return std::move(maps[static_cast<std::size_t>(end)][0]);
}

void Engine::run_suffix(const BinaryMap& prefix, std::uint64_t seed, std::uint64_t image, int first_sample,
                        int count, bool dropout, float* logits, LayerEvents* events) const {
  const int layer_count = static_cast<int>(layers().size());
  const int from = model_->first_dropout_layer();
  // Samples per batch: enough rows for an efficient GEMM, few enough to stay in cache.
  const int pixels = std::max(1, layers()[static_cast<std::size_t>(from)].shape.out_h *
                                     layers()[static_cast<std::size_t>(from)].shape.out_w);
  const int batch = std::max(1, 512 / pixels);
  LayerScratch buffers;
  std::vector<std::vector<BinaryMap>> maps(static_cast<std::size_t>(layer_count) + 1);
  for (int begin = 0; begin < count; begin += batch) {
    const int n = std::min(batch, count - begin);
    maps[static_cast<std::size_t>(from)].assign(static_cast<std::size_t>(n), prefix);
    run_layers(maps, from, layer_count, MaskKey{seed, image, static_cast<std::uint64_t>(first_sample + begin), from},
               dropout, buffers, logits + static_cast<std::size_t>(begin) * spec().classes, events);
  }
}

McPredictions Engine::predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                              Ledger* ledger, std::vector<float>* all_logits) const {
  if (samples < 1) throw Error("samples: must be >= 1");
  spec().check_input(images.name, images.c, images.h, images.w);
  const bool stochastic = dropout && model_->has_dropout();
  if (!stochastic) samples = 1;
  const int classes = spec().classes;
  McPredictions mc;
  mc.samples = samples;
  mc.inputs = images.n;
  mc.classes = classes;
  mc.probs.resize(static_cast<std::size_t>(samples) * images.n * classes);
  if (all_logits != nullptr) all_logits->assign(mc.probs.size(), 0.0f);
  const std::size_t layer_count = layers().size();
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
      if (all_logits != nullptr) std::copy(z, z + classes, all_logits->data() + (static_cast<std::size_t>(t) * images.n + i) * classes);
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
