#pragma once
// The software backend: dropout masks from the counter-based generator (dropout_keeps(), the
// function the LibTorch path uses too, so both draw the same masks for the same seed) and exact
// thresholds on the integer dot products. With it the engine reproduces LibTorch's inference.
#include <memory>

#include "engine/backend.h"
#include "engine/compiled_model.h"

namespace spinbayes {

class PrngMasks final : public MaskSource {
 public:
  explicit PrngMasks(std::shared_ptr<const CompiledModel> model) : model_(std::move(model)) {}
  // Spatial dropout on a convolution: channel; everything else (element dropout, linear layers,
  // whose inputs are single elements): element. Never window.
  MaskGrain grain(int layer) const override;
  void channel_keep(const MaskKey& key, std::vector<BitWord>& keep, LayerEvents& events) const override;
  void mask_map(const MaskKey& key, BinaryMap& map, LayerEvents& events) const override;
  void mask_patches(const MaskKey& key, Patches& patches, int row, LayerEvents& events) const override;

 private:
  std::shared_ptr<const CompiledModel> model_;
};

class ExactArrays final : public ArrayStage {
 public:
  explicit ExactArrays(std::shared_ptr<const CompiledModel> model) : model_(std::move(model)) {}
  const BitMatrix& weights(int layer) const override { return model_->layer(layer).weights; }
  const PackedOperand& packed_weights(int layer) const override { return model_->layer(layer).packed_weights; }
  // The folded threshold on each exact dot (threshold_bits); the output layer reads the dots.
  void sense(int layer, const PatchRows& patches, int row, int windows, const std::int32_t* dots, bool masked,
             const BitMatrix* shortcut, BitMatrix& signs, LayerEvents& events) const override;
  void read_out(int layer, const PatchRows& patches, int row, const std::int32_t* dots, double* sums,
                LayerEvents& events) const override;
  bool reads_patch_rows() const override { return false; }
  bool senses_exact_thresholds() const override { return true; }

 private:
  std::shared_ptr<const CompiledModel> model_;
};

EngineBackend ideal_backend(const std::shared_ptr<const CompiledModel>& model);

}  // namespace spinbayes
