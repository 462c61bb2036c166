#pragma once
// The bit-packed Monte Carlo inference engine: executes a compiled model for T stochastic passes
// with XNOR-popcount arithmetic, on a backend (backend.h): the software one (ideal_backend.h) or a
// simulated chip's (hw/chip.h), through the same loop. Layers before the first dropout site run
// once per image; the rest run once per sample.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "data/image_set.h"
#include "engine/backend.h"
#include "engine/channel_conv.h"
#include "engine/compiled_model.h"
#include "engine/events.h"
#include "engine/im2col.h"
#include "model/model_ir.h"
#include "uncertainty/metrics.h"

namespace spinbayes {

// The buffers a layer's pass reuses from call to call (one set per thread).
struct LayerScratch {
  Patches patches;              // patches with their keep bits (element or window masks)
  ChannelConvScratch channel;   // masks by whole channel: spatial dropout, or none
  std::vector<BitWord> channel_keep;
  std::vector<std::int32_t> dots;
};

class Engine {
 public:
  // The software backend: PRNG masks and exact thresholds.
  explicit Engine(const ModelIR& ir);
  Engine(std::shared_ptr<const CompiledModel> model, EngineBackend backend);

  const CompiledModel& model() const { return *model_; }
  const ModelSpec& spec() const { return model_->spec(); }
  const std::vector<EngineLayer>& layers() const { return model_->layers(); }
  int first_dropout_layer() const { return model_->first_dropout_layer(); }

  // Monte Carlo predictions with the layout and mask keys of TorchModel::predict: `samples` passes
  // with dropout on, or one pass with it off. Parallel over images (OpenMP); the result does not
  // depend on the thread count.
  // With `ledger`, the events of the run are added to it (one LayerEvents per layer); with
  // `logits`, the logits the probabilities are the softmax of (samples x inputs x classes).
  McPredictions predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                        Ledger* ledger = nullptr, std::vector<float>* logits = nullptr) const;

  // One image through layers [0, first dropout site): the binary map every sample starts from.
  BinaryMap run_prefix(const float* pixels, LayerEvents* events = nullptr) const;
  // The remaining layers for samples [first_sample, first_sample + count) of one image; writes
  // count x classes logits. `dropout` false = no masks. Samples whose maps are small run through
  // each layer together, as one taller binary GEMM.
  void run_suffix(const BinaryMap& prefix, std::uint64_t seed, std::uint64_t image, int first_sample, int count,
                  bool dropout, float* logits, LayerEvents* events = nullptr) const;
  // Layer key.layer's integer dot products (out pixels x out channels, channels fastest) for a
  // map, after applying that layer's masks of pass `key` when `dropout` is set. For tests and the
  // bench.
  std::vector<std::int32_t> layer_dots(const BinaryMap& input, const MaskKey& key, bool dropout) const;
  // The same into scratch.dots, with buffers kept from call to call as the Monte Carlo loop keeps
  // them (the bench times layers this way).
  void layer_dots(const BinaryMap& input, const MaskKey& key, bool dropout, LayerScratch& scratch) const;
  // Layer `index`'s output map (its decisions, pooled) from its dots (out pixels x out channels)
  // through the ideal threshold, for a hidden layer; a residual block's last convolution needs its
  // shortcut map.
  BinaryMap layer_output(int index, const std::int32_t* dots, bool dropout, const BinaryMap* shortcut = nullptr) const;
  // Hidden layer key.layer's output map for one sample, its dots and sense decisions made as a
  // pass makes them (through the backend's sense, or fused with the convolution where the engine
  // fuses them); a residual block's last convolution needs its shortcut map. The bench times
  // whole layers this way.
  BinaryMap hidden_layer(const BinaryMap& input, const MaskKey& key, bool dropout, const BinaryMap* shortcut,
                         LayerScratch& scratch) const;

 private:
  // Binary layer first.layer (>= 1) for maps[s], s < n: the passes of samples first.sample + s of
  // one image (the prefix pass: one map, no dropout). The maps become the layer's outputs; the
  // output layer writes n x classes logits instead.
  // A residual block's last convolution reads its shortcut maps[s] too.
  void run_layer(std::vector<BinaryMap>& maps, const std::vector<BinaryMap>* shortcut, const MaskKey& first,
                 bool dropout, LayerScratch& scratch, float* logits, LayerEvents& events) const;
  // Layers [begin, end) of a pass over the network's maps (maps[k]: map k of each sample; k = 0
  // the image, k = i + 1 layer i's output), keyed from first's seed, image and sample.
  void run_layers(std::vector<std::vector<BinaryMap>>& maps, int begin, int end, const MaskKey& first, bool dropout,
                  LayerScratch& scratch, float* logits, LayerEvents* events) const;
  // The grain of layer `index`'s masks in this pass; unmasked layers run as the channel grain with
  // every channel kept.
  MaskGrain grain(int index, bool mask) const { return mask ? backend_.masks->grain(index) : MaskGrain::channel; }
  // The channel keep of pass `key` into scratch.channel_keep when `mask`, else empty (all kept).
  void draw_channel_keep(const MaskKey& key, bool mask, LayerScratch& scratch, LayerEvents& events) const;
  // The dots of one sample's map whose inputs are kept a whole channel at a time (or all kept),
  // through channel_masked_conv; returns the patch rows they came from.
  PatchRows channel_pass(int index, const BinaryMap& map, const MaskKey& key, bool mask, LayerScratch& scratch,
                         std::int32_t* dots, LayerEvents& events) const;
  // The dots of maps[s] (samples key.sample + s) under element or window masks, as one GEMM.
  PatchRows batch_pass(int index, std::span<BinaryMap> maps, const MaskKey& key, MaskGrain grain,
                       LayerScratch& scratch, std::int32_t* dots, LayerEvents& events) const;
  // One sample's output map of a hidden layer whose inputs are kept a whole channel at a time.
  BinaryMap channel_sample(int index, const BinaryMap& map, const MaskKey& key, bool mask, const BitMatrix* shortcut,
                           LayerScratch& scratch, std::int32_t* dots, LayerEvents& events) const;
  // Does layer `index` make its decisions in its convolution's pass (narrow_conv.h's
  // pointwise_signs)? Only where the backend's sense is the exact folded threshold, for a 1x1
  // hidden convolution of a narrow map.
  bool fuses_sense(int index) const;
  BinaryMap first_layer(const float* pixels) const;

  std::shared_ptr<const CompiledModel> model_;
  EngineBackend backend_;
};

}  // namespace spinbayes
