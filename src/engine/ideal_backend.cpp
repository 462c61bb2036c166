#include "engine/ideal_backend.h"

#include <algorithm>

#include "core/error.h"
#include "model/dropout_mask.h"

namespace spinbayes {

MaskGrain PrngMasks::grain(int layer) const {
  const LayerSpec& l = model_->layer(layer).shape;
  return l.dropout_kind == DropoutKind::spatial && l.kind == LayerSpec::Kind::conv ? MaskGrain::channel
                                                                                  : MaskGrain::element;
}

void PrngMasks::channel_keep(const MaskKey& key, std::vector<BitWord>& keep, LayerEvents&) const {
  const int channels = model_->layer(key.layer).in_c;
  keep.resize(static_cast<std::size_t>(words_for_bits(channels)));
  const DropoutDraws draws(key.seed, key.image, key.sample, key.layer, model_->layer(key.layer).shape.dropout_p);
  // Channel ch's draw is unit ch: a word's 64 channels in one keep_bits call.
  for (std::size_t word = 0; word < keep.size(); ++word) {
    const int first = static_cast<int>(word) * kBitsPerWord;
    keep[word] = draws.keep_bits(static_cast<std::uint64_t>(first), 1, std::min(kBitsPerWord, channels - first));
  }
}

void PrngMasks::mask_map(const MaskKey& key, BinaryMap& map, LayerEvents&) const {
  map.keep = BitMatrix(map.height * map.width, map.channels);
  const DropoutDraws draws(key.seed, key.image, key.sample, key.layer, model_->layer(key.layer).shape.dropout_p);
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

void PrngMasks::mask_patches(const MaskKey& key, Patches&, int, LayerEvents&) const {
  throw Error("layer " + std::to_string(key.layer) + ": software masks are never drawn per window");
}

void ExactArrays::sense(int layer, const PatchRows&, int, int windows, const std::int32_t* dots, bool masked,
                        const BitMatrix* shortcut, BitMatrix& signs, LayerEvents&) const {
  threshold_windows(model_->layer(layer), dots, windows, masked, signs, shortcut);
}

void ExactArrays::read_out(int layer, const PatchRows&, int, const std::int32_t* dots, double* sums,
                           LayerEvents&) const {
  const int out_c = model_->layer(layer).shape.out_channels;
  std::copy(dots, dots + out_c, sums);
}

EngineBackend ideal_backend(const std::shared_ptr<const CompiledModel>& model) {
  return {std::make_shared<PrngMasks>(model), std::make_shared<ExactArrays>(model)};
}

}  // namespace spinbayes
