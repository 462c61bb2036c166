#pragma once
// The bit-packed Monte Carlo inference engine: executes a model IR for T stochastic passes with
// XNOR-popcount arithmetic. Layers before the first dropout site run once per image; the rest
// run once per sample. Masks come from dropout_keeps(), the same function the LibTorch path uses,
// so both backends see the same masks for the same seed.
#include <cstdint>
#include <vector>

#include "data/image_set.h"
#include "engine/bit_matrix.h"
#include "engine/channel_conv.h"
#include "hw/ledger.h"
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

// The two parts of a pass that a hardware model replaces (see DESIGN: "mask source" and "array
// backend"): where dropout masks come from, and how a layer's dot products become its output.
// With none attached the engine draws PRNG masks and thresholds exact popcounts; the chip
// simulator (hw/chip.h) attaches itself and the same loop runs on simulated MTJ hardware.
// Every hook adds what it did to the layer's event counts.
class ChipHooks {
 public:
  virtual ~ChipHooks() = default;
  // Masks of layer `index` for one pass go either on its input map, like the PRNG masks, or, when
  // patch_level_masks(index), on its patch rows [row, row + windows) after im2col (bits that
  // differ from one window to the next).
  virtual bool patch_level_masks(int index) const = 0;
  virtual void mask_map(int index, BinaryMap& map, std::uint64_t seed, std::uint64_t image, std::uint64_t sample,
                        LayerEvents& events) const = 0;
  virtual void mask_patches(int index, Patches& patches, int row, std::uint64_t seed, std::uint64_t image,
                            std::uint64_t sample, LayerEvents& events) const = 0;
  // The bits the arrays actually hold (faults included), for the GEMM.
  virtual const BitMatrix& weights(int index) const = 0;
  virtual const PackedOperand& packed_weights(int index) const = 0;
  // Hidden layer: the sense decisions of patch rows [row, row + windows) from their GEMM dots
  // (windows x out channels); `masked` selects the threshold for dropout on.
  virtual BitMatrix sense(int index, const Patches& patches, int row, const std::int32_t* dots, bool masked,
                          LayerEvents& events) const = 0;
  // Output layer: the column sums (dot units) of patch row `row`, as read out through the ADCs.
  virtual void read_out(int index, const Patches& patches, int row, const std::int32_t* dots, double* sums,
                        LayerEvents& events) const = 0;
};

// The buffers a layer's pass reuses from call to call (one set per thread).
struct LayerScratch {
  Patches patches;              // patches with their keep bits (element masks, or a chip attached)
  ChannelConvScratch channel;   // masks by whole channel: spatial dropout, or none
  std::vector<BitWord> channel_keep;
  std::vector<std::int32_t> dots;
};

class Engine {
 public:
  explicit Engine(const ModelIR& ir);
  // Runs every later pass on `chip` (not owned; nullptr = the ideal engine again).
  void attach(const ChipHooks* chip) { chip_ = chip; }

  const ModelSpec& spec() const { return spec_; }
  const std::vector<EngineLayer>& layers() const { return layers_; }
  int first_dropout_layer() const { return first_dropout_; }

  // Monte Carlo predictions with the layout and mask keys of TorchModel::predict: `samples` passes
  // with dropout on, or one pass with it off. Parallel over images (OpenMP); the result does not
  // depend on the thread count.
  // With `ledger`, the events of the run are added to it (one LayerEvents per layer).
  McPredictions predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                        Ledger* ledger = nullptr) const;

  // One image through layers [0, first dropout site): the binary map every sample starts from.
  BinaryMap run_prefix(const float* pixels, LayerEvents* events = nullptr) const;
  // The remaining layers for samples [first_sample, first_sample + count) of one image; writes
  // count x classes logits. `dropout` false = no masks. Samples whose maps are small run through
  // each layer together, as one taller binary GEMM.
  void run_suffix(const BinaryMap& prefix, std::uint64_t seed, std::uint64_t image, int first_sample, int count,
                  bool dropout, float* logits, LayerEvents* events = nullptr) const;
  // Layer `index`'s integer dot products (out pixels x out channels, channels fastest) for a map,
  // after applying that layer's masks when `dropout` is set. For tests and the bench.
  std::vector<std::int32_t> layer_dots(int index, const BinaryMap& input, std::uint64_t seed, std::uint64_t image,
                                       std::uint64_t sample, bool dropout) const;
  // The same into scratch.dots, with buffers kept from call to call as the Monte Carlo loop keeps
  // them (the bench times layers this way).
  void layer_dots(int index, const BinaryMap& input, std::uint64_t seed, std::uint64_t image, std::uint64_t sample,
                  bool dropout, LayerScratch& scratch) const;
  // Layer `index`'s dropout mask as one bit per input channel (spatial dropout on a convolution),
  // into `keep`.
  void channel_keep(int index, std::uint64_t seed, std::uint64_t image, std::uint64_t sample,
                    std::vector<BitWord>& keep) const;
  // Layer `index`'s output map (thresholded, pooled) from its dots (out pixels x out channels).
  BinaryMap layer_output(int index, const std::int32_t* dots, bool dropout) const;
  bool masked(int index, bool dropout) const;  // does layer `index` apply dropout masks in this pass?

 private:
  // Binary layer `index` (>= 1) for maps[s], s < n: the passes of samples first_sample + s of one
  // image (the prefix pass: one map, no dropout). The maps become the layer's outputs; the output
  // layer writes n x classes logits instead.
  void run_layer(int index, std::vector<BinaryMap>& maps, std::uint64_t seed, std::uint64_t image, int first_sample,
                 bool dropout, LayerScratch& scratch, float* logits, LayerEvents& events) const;
  // Are layer `index`'s inputs in this pass kept or dropped a whole channel at a time (spatial
  // dropout on a convolution, or no masks), so that channel_masked_conv computes its dots?
  bool channel_masked(int index, bool dropout) const;
  // The dots of layer `index` for one map of one sample through channel_masked_conv, into `dots`.
  void channel_dots(int index, const BinaryMap& map, std::uint64_t seed, std::uint64_t image, std::uint64_t sample,
                    bool dropout, LayerScratch& scratch, std::int32_t* dots) const;
  BinaryMap first_layer(const float* pixels) const;
  // Element masks (element dropout, and every linear layer) on `map`: masks by whole channel never
  // come here, they go to channel_dots.
  void apply_element_masks(int index, BinaryMap& map, std::uint64_t seed, std::uint64_t image, std::uint64_t sample) const;
  double input_scale(int index, bool dropout) const;  // 1 / (1 - p) when masked, else 1

  ModelSpec spec_;
  double dropout_scale_ = 1.0;
  std::vector<EngineLayer> layers_;
  int first_dropout_ = 0;
  const ChipHooks* chip_ = nullptr;
};

}  // namespace spinbayes
