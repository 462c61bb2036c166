#pragma once
// The seam between the Monte Carlo loop and whatever the network runs on (DESIGN: "mask source"
// and "array stage"). The engine's loop (engine.h) runs each binary layer of one pass as
//   masks:  which of the layer's inputs are present in this pass (MaskSource)
//   GEMM:   the exact integer dot products of the present inputs with the weights the arrays
//           hold (bit-packed XNOR-popcount, engine/bgemm.h)
//   arrays: those dots turned into the layer's binary decisions, or the output layer's read-out
//           sums (ArrayStage)
// The software implementations (PRNG masks, exact thresholds) are in engine/ideal_backend.h; the
// simulated spintronic chip (hw/chip.h) supplies MTJ dropout modules and crossbars. The loop is the
// same for both: it never asks which one it runs on.
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/bgemm.h"
#include "engine/bit_matrix.h"
#include "engine/events.h"
#include "engine/im2col.h"

namespace spinbayes {

// The key of every random draw of one layer's masks in one pass.
struct MaskKey {
  std::uint64_t seed = 0;    // the evaluation stream's seed
  std::uint64_t image = 0;   // index of the image in its set
  std::uint64_t sample = 0;  // Monte Carlo sample
  int layer = 0;             // the layer whose input is masked (the dropout site)
};

// How a layer's masks vary within one pass; it decides how the engine computes the layer's dots.
enum class MaskGrain {
  channel,  // one bit per input channel, held over the whole map (spatial dropout on a
            // convolution): the dots come from channel_masked_conv, one keep row per rectangle
            // of in-map taps
  element,  // one bit per input element, held for every window that reads it: on the map
  window,   // bits that differ from one window to the next: on the patch rows after im2col
};

class MaskSource {
 public:
  virtual ~MaskSource() = default;
  // The grain of layer `layer`'s masks when dropout is on for it (with dropout off every input is
  // present, which the engine runs as the channel grain with every channel kept).
  virtual MaskGrain grain(int layer) const = 0;
  // Channel grain: bit c of `keep` (words_for_bits(C_in) words) is set iff input channel c is kept.
  virtual void channel_keep(const MaskKey& key, std::vector<BitWord>& keep, LayerEvents& events) const = 0;
  // Element grain: map.keep (the shape of map.signs), 1 = present.
  virtual void mask_map(const MaskKey& key, BinaryMap& map, LayerEvents& events) const = 0;
  // Window grain: ANDs the masks into keep rows [row, row + windows) of `patches` (the im2col of
  // this sample's map) and recounts their `kept`.
  virtual void mask_patches(const MaskKey& key, Patches& patches, int row, LayerEvents& events) const = 0;
};

// The patch rows an array stage reads besides the dots: each window's input bits and which of its
// rows are driven (keep rows shared through an index where windows share one).
struct PatchRows {
  PatchRows(const BitMatrix& signs_, KeepRows keep_, const std::int32_t* kept_) : signs(signs_), keep(keep_), kept(kept_) {}
  PatchRows(const Patches& p) : signs(p.signs), keep(p.keep), kept(p.kept.data()) {}  // NOLINT: every row its own
  const BitMatrix& signs;
  KeepRows keep;
  const std::int32_t* kept;  // popcount of each keep row
  int words() const { return signs.words; }
  const BitWord* sign_row(int m) const { return signs.row(m); }
  const BitWord* keep_row(int m) const { return keep.row(m); }
  bool sign(int m, int r) const { return (signs.row(m)[r / kBitsPerWord] >> (r % kBitsPerWord)) & 1u; }
  bool driven(int m, int r) const { return (keep.row(m)[r / kBitsPerWord] >> (r % kBitsPerWord)) & 1u; }
};

class ArrayStage {
 public:
  virtual ~ArrayStage() = default;
  // The bits the arrays of layer `layer` hold (faults included), for the GEMM, plainly and packed.
  virtual const BitMatrix& weights(int layer) const = 0;
  virtual const PackedOperand& packed_weights(int layer) const = 0;
  // Hidden layer: the decisions of windows [row, row + windows) of `patches` from their dots
  // (windows x out channels) into rows [0, windows) of `signs`; `masked`: dropout is on for this
  // layer in this pass (the dots are then scaled by 1 / (1 - p), which the threshold folds in).
  // A residual block's last convolution also gets its shortcut map (out pixels x out channels),
  // whose bit per output selects that output's threshold; null for every other layer.
  virtual void sense(int layer, const PatchRows& patches, int row, int windows, const std::int32_t* dots,
                     bool masked, const BitMatrix* shortcut, BitMatrix& signs, LayerEvents& events) const = 0;
  // Output layer: the column sums (in dot units) of window `row`, as read out.
  virtual void read_out(int layer, const PatchRows& patches, int row, const std::int32_t* dots, double* sums,
                        LayerEvents& events) const = 0;
  // Do sense and read_out read the patch rows, or the dots alone? When they read only the dots,
  // the engine may compute a layer's dots without gathering patches (engine/narrow_conv.h) and
  // passes empty patch rows.
  virtual bool reads_patch_rows() const { return true; }
  // Is sense the model's folded threshold on each exact dot (threshold_windows), recording no
  // events? Then the engine may make a layer's decisions in its convolution's pass, never storing
  // the dots (engine/narrow_conv.h's pointwise_signs).
  virtual bool senses_exact_thresholds() const { return false; }
};

// What the engine runs a model on.
struct EngineBackend {
  std::shared_ptr<const MaskSource> masks;
  std::shared_ptr<const ArrayStage> arrays;
};

}  // namespace spinbayes
