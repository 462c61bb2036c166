#pragma once
// A simulated spintronic CiM chip running a trained model: the hardware backend of the engine's
// Monte Carlo loop (engine/backend.h), with the chip's dropout modules as the mask source
// (ChipMasks) and its MTJ crossbars as the array stage (ChipArrays).
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
//     A disturbing read turns the element's "drop" into "keep" for the later windows reading it.
//   linear layers: one module per input, one read per pass, under both schemes.
// Modules draw their bits from the same counter-based uniform as the software masks, compared
// with their own switching probability, so with p_m = p the chip's masks are the engine's.
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/backend.h"
#include "engine/compiled_model.h"
#include "engine/engine.h"
#include "hw/crossbar.h"
#include "hw/dropout_module.h"
#include "hw/hardware_config.h"
#include "hw/ledger.h"
#include "hw/mapping.h"

namespace spinbayes {

// How a layer's dropout modules sit on the chip.
enum class ModuleLayout {
  spatial,             // one per input channel, written once per pass, read at every window
  element_per_window,  // one per crossbar row, written afresh at every window (SpinDrop)
  element_per_element, // one per input element, held for every window that reads it
  linear,              // one per input of a linear layer, read once per pass
};

// The dropout modules of every layer: the chip's mask source.
class ChipMasks final : public MaskSource {
 public:
  ChipMasks(std::shared_ptr<const CompiledModel> model, const HardwareConfig& hw, std::vector<LayerMapping> mapping,
            std::uint64_t chip_seed);

  const DropoutBank& bank(int layer) const { return banks_[static_cast<std::size_t>(layer)]; }
  ModuleLayout layout(int layer) const;

  // Spatial and per_element modules: channel or element, or window under read disturb (a
  // module's bit may change between windows); per_window modules: window; linear: element.
  MaskGrain grain(int layer) const override;
  void channel_keep(const MaskKey& key, std::vector<BitWord>& keep, LayerEvents& events) const override;
  void mask_map(const MaskKey& key, BinaryMap& map, LayerEvents& events) const override;
  void mask_patches(const MaskKey& key, Patches& patches, int row, LayerEvents& events) const override;

 private:
  // Per-element modules of a convolution under read disturb: each window's keep bits as its
  // reads found the modules (mask_patches).
  void element_modules_disturbed(const MaskKey& key, Patches& patches, int row, LayerEvents& events) const;
  // patches.kept of the windows [row, row + windows) from their keep bits.
  static void count_kept(Patches& patches, int row, int windows);

  std::shared_ptr<const CompiledModel> model_;
  double read_disturb_ = 0.0;
  ElementMasks element_masks_;
  std::vector<LayerMapping> mapping_;
  std::vector<DropoutBank> banks_;   // per layer; empty where there is no dropout
  std::vector<bool> uniform_bank_;   // every module of the layer at the software probability
};

// The crossbars of every binary-input layer: the chip's array stage.
class ChipArrays final : public ArrayStage {
 public:
  ChipArrays(std::shared_ptr<const CompiledModel> model, const HardwareConfig& hw,
             const std::vector<LayerMapping>& mapping, std::uint64_t chip_seed);

  const CrossbarLayer& array(int layer) const { return arrays_[static_cast<std::size_t>(layer)]; }
  struct DeadTile {
    int layer = 0, row_tile = 0, col_tile = 0;
  };
  const std::vector<DeadTile>& dead_tiles() const { return dead_; }  // by layer, row tile, column tile

  const BitMatrix& weights(int layer) const override { return array(layer).weights(); }
  const PackedOperand& packed_weights(int layer) const override { return array(layer).packed_weights(); }
  void sense(int layer, const PatchRows& patches, int row, int windows, const std::int32_t* dots, bool masked,
             const BitMatrix* shortcut, BitMatrix& signs, LayerEvents& events) const override;
  void read_out(int layer, const PatchRows& patches, int row, const std::int32_t* dots, double* sums,
                LayerEvents& events) const override;

 private:
  std::shared_ptr<const CompiledModel> model_;
  std::vector<CrossbarLayer> arrays_;  // per layer; empty for the first (digital) layer
  std::vector<DeadTile> dead_;
};

class Chip {
 public:
  Chip(const ModelIR& ir, const HardwareConfig& hw, std::uint64_t chip_seed);

  // The engine on this chip's backend (it shares the chip's parts; the chip must outlive it).
  Engine engine() const { return Engine(model_, EngineBackend{masks_, arrays_}); }
  // Monte Carlo predictions as Engine::predict; the run's events are added to `ledger`.
  McPredictions predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                        Ledger* ledger = nullptr, std::vector<float>* logits = nullptr) const {
    return engine().predict(images, samples, seed, dropout, ledger, logits);
  }

  const ModelSpec& spec() const { return model_->spec(); }
  const std::vector<LayerMapping>& mapping() const { return mapping_; }
  const ChipMasks& masks() const { return *masks_; }
  const ChipArrays& arrays() const { return *arrays_; }
  const DropoutBank& bank(int layer) const { return masks_->bank(layer); }
  const CrossbarLayer& array(int layer) const { return arrays_->array(layer); }

 private:
  std::shared_ptr<const CompiledModel> model_;
  std::vector<LayerMapping> mapping_;
  std::shared_ptr<const ChipMasks> masks_;
  std::shared_ptr<const ChipArrays> arrays_;
};

}  // namespace spinbayes
