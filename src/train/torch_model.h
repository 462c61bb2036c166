#pragma once
// A trained network loaded for inference through LibTorch: the reference path that the bit-packed
// engine and the hardware simulator are checked against. Torch-free header (pimpl).
#include <cstdint>
#include <filesystem>
#include <memory>

#include "data/image_set.h"
#include "model/model_spec.h"
#include "uncertainty/metrics.h"

namespace spinbayes {

class TorchModel {
 public:
  // Loads DIR/config.json and DIR/checkpoint.pt; throws Error naming the file on failure.
  static TorchModel load(const std::filesystem::path& dir);
  TorchModel(TorchModel&&) noexcept;
  TorchModel& operator=(TorchModel&&) noexcept;
  ~TorchModel();

  const ModelSpec& spec() const;

  // Monte Carlo predictions: `samples` stochastic passes with dropout on (masks from
  // dropout_keeps(seed, image index, sample, layer, unit)), or one pass with dropout off when
  // `dropout` is false. Layers before the first dropout site run once per image.
  McPredictions predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                        int batch = 500) const;

 private:
  struct Impl;
  explicit TorchModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace spinbayes
