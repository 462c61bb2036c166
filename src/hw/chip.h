#pragma once
// A simulated spintronic CiM chip running a trained model: the engine's Monte Carlo loop with the
// chip's dropout modules as the mask source and its MTJ crossbars as the array backend.
//
// Dropout semantics on the chip, and how they match training:
//   spatial: one module per input channel, reset and written once per pass, read at every
//     window; its bit gates the K*K word lines of its channel. Same mask as training: one bit per
//     (image, channel) broadcast over the map. A read that disturbs the module (AP -> P) turns its
//     "drop" into "keep" for the rest of the layer's windows.
//   element, per_window (SpinDrop's hardware): one module per crossbar row, written afresh at every
//     window. Each window's dot product sees exactly the distribution of training's element
//     dropout (every term dropped independently with probability p), but a pixel read by two
//     windows may be kept in one and dropped in the other, where training drops it in both.
//   element, per_element: one bit per input element, held for every window that reads it: what
//     training did (the `ideal` preset uses it, so that the chip reproduces the engine exactly).
//   linear layers: one module per input, one read per pass, under both schemes.
// Modules draw their bits from the same counter-based uniform as the software masks, compared
// with their own switching probability, so with p_m = p the chip's masks are the engine's.
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/engine.h"
#include "hw/crossbar.h"
#include "hw/dropout_module.h"
#include "hw/hardware_config.h"
#include "hw/ledger.h"
#include "hw/mapping.h"

namespace spinbayes {

class Chip final : public ChipHooks {
 public:
  Chip(const ModelIR& ir, const HardwareConfig& hw, std::uint64_t chip_seed);
  Chip(const Chip&) = delete;
  Chip& operator=(const Chip&) = delete;

  // Monte Carlo predictions as Engine::predict; the run's events are added to `ledger`.
  McPredictions predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                        Ledger* ledger = nullptr) const;

  const ModelSpec& spec() const { return engine_.spec(); }
  const std::vector<LayerMapping>& mapping() const { return mapping_; }
  const DropoutBank& bank(int layer) const { return banks_[static_cast<std::size_t>(layer)]; }
  const CrossbarLayer& array(int layer) const { return arrays_[static_cast<std::size_t>(layer)]; }
  const Engine& engine() const { return engine_; }

  // ChipHooks
  bool patch_level_masks(int index) const override;
  void mask_map(int index, BinaryMap& map, std::uint64_t seed, std::uint64_t image, std::uint64_t sample,
                LayerEvents& events) const override;
  void mask_patches(int index, Patches& patches, int row, std::uint64_t seed, std::uint64_t image,
                    std::uint64_t sample, LayerEvents& events) const override;
  const BitMatrix& weights(int index) const override { return array(index).weights(); }
  const PackedOperand& packed_weights(int index) const override { return array(index).packed_weights(); }
  BitMatrix sense(int index, const Patches& patches, int row, const std::int32_t* dots, bool masked,
                  LayerEvents& events) const override;
  void read_out(int index, const Patches& patches, int row, const std::int32_t* dots, double* sums,
                LayerEvents& events) const override;

 private:
  enum class Scheme { spatial, element_per_window, element_per_element, linear };
  Scheme scheme(int index) const;

  Engine engine_;
  HardwareConfig hw_;
  std::uint64_t chip_seed_;
  std::vector<LayerMapping> mapping_;
  std::vector<CrossbarLayer> arrays_;  // per layer; empty for the first (digital) layer
  std::vector<DropoutBank> banks_;     // per layer; empty where there is no dropout
  std::vector<bool> uniform_bank_;     // every module of the layer at the software probability
};

}  // namespace spinbayes
