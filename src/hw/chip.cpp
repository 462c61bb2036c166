#include "hw/chip.h"

#include <bit>
#include <cmath>
#include <limits>

#include "model/dropout_mask.h"

namespace spinbayes {

namespace {
constexpr std::uint64_t kPerWindowStream = name_tag("masks.per_window");
constexpr std::uint64_t kDisturbStream = name_tag("masks.read_disturb");
}  // namespace

Chip::Chip(const ModelIR& ir, const HardwareConfig& hw, std::uint64_t chip_seed)
    : engine_(ir), hw_(hw), chip_seed_(chip_seed), mapping_(map_layers(ir.spec, hw.crossbar)) {
  hw_.validate();
  const auto& layers = engine_.layers();
  arrays_.resize(layers.size());
  banks_.resize(layers.size());
  uniform_bank_.assign(layers.size(), true);
  for (std::size_t i = 1; i < layers.size(); ++i) {
    arrays_[i] = CrossbarLayer(hw_, mapping_[i], layers[i].weights, chip_seed_, static_cast<int>(i));
    if (!layers[i].shape.dropout_before || !ir.spec.has_dropout()) continue;
    const EngineLayer& l = layers[i];
    int modules = 0;
    switch (scheme(static_cast<int>(i))) {
      case Scheme::spatial: modules = l.in_c; break;
      case Scheme::element_per_window: modules = mapping_[i].rows; break;
      case Scheme::element_per_element:
      case Scheme::linear: modules = l.in_c * l.in_h * l.in_w; break;
    }
    banks_[i] = DropoutBank(hw_, ir.spec.p, modules, chip_seed_, static_cast<int>(i));
    const std::uint64_t software = DropoutDraws::bound_for(ir.spec.p);
    for (int m = 0; m < modules; ++m) uniform_bank_[i] = uniform_bank_[i] && banks_[i].drop_bound(m) == software;
  }
  engine_.attach(this);
}

Chip::Scheme Chip::scheme(int index) const {
  if (mapping_[static_cast<std::size_t>(index)].linear) return Scheme::linear;
  if (engine_.spec().dropout == DropoutKind::spatial) return Scheme::spatial;
  return hw_.dropout_module.element_masks == "per_window" ? Scheme::element_per_window : Scheme::element_per_element;
}

bool Chip::patch_level_masks(int index) const {
  const Scheme s = scheme(index);
  return s == Scheme::element_per_window || (s == Scheme::spatial && hw_.faults.read_disturb > 0.0);
}

McPredictions Chip::predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                            Ledger* ledger) const {
  return engine_.predict(images, samples, seed, dropout, ledger);
}

void Chip::mask_map(int index, BinaryMap& map, std::uint64_t seed, std::uint64_t image, std::uint64_t sample,
                    LayerEvents& events) const {
  const auto i = static_cast<std::size_t>(index);
  const DropoutBank& bank = banks_[i];
  const LayerMapping& mapping = mapping_[i];
  const DropoutDraws draws(seed, image, sample, index, engine_.spec().p);
  map.keep = BitMatrix(map.height * map.width, map.channels);
  const Scheme s = scheme(index);
  if (s == Scheme::spatial) {
    // One module per channel: reset and written once, read at every window.
    // Module c draws unit c against its own bound.
    std::vector<BitWord> channel_keep(static_cast<std::size_t>(map.keep.words));
    for (int word = 0; word < map.keep.words; ++word) {
      const int first = word * kBitsPerWord;
      channel_keep[static_cast<std::size_t>(word)] = draws.keep_bits(
          static_cast<std::uint64_t>(first), 1, std::min(kBitsPerWord, map.channels - first), bank.drop_bounds() + first);
    }
    for (int pix = 0; pix < map.height * map.width; ++pix) {
      std::copy(channel_keep.begin(), channel_keep.end(), map.keep.row(pix));
    }
    const auto channels = static_cast<std::uint64_t>(map.channels);
    events.module_resets += channels;
    events.module_writes += channels;
    events.module_reads += channels * static_cast<std::uint64_t>(mapping.windows);
    return;
  }
  // One module per input element (per_element, linear): unit = (c * H + y) * W + x, as the
  // software masks number them.
  const auto plane = static_cast<std::uint64_t>(map.height) * map.width;
  const double disturb = s == Scheme::linear ? hw_.faults.read_disturb : 0.0;
  const std::uint64_t disturb_seed = stream_seed(seed, kDisturbStream);
  for (int pix = 0; pix < map.height * map.width; ++pix) {
    BitWord* row = map.keep.row(pix);
    for (int word = 0; word < map.keep.words; ++word) {
      const int first = word * kBitsPerWord;
      const int count = std::min(kBitsPerWord, map.channels - first);
      const std::uint64_t first_unit = static_cast<std::uint64_t>(first) * plane + static_cast<std::uint64_t>(pix);
      if (uniform_bank_[i] && disturb == 0.0) {
        row[word] = draws.keep_bits(first_unit, plane, count);
        continue;
      }
      BitWord bits = 0;
      for (int b = 0; b < count; ++b) {
        const std::uint64_t unit = first_unit + static_cast<std::uint64_t>(b) * plane;
        bool keep = draws.draw53(unit) >= bank.drop_bound(static_cast<int>(unit));
        // The single read of a dropped module may disturb it back to P.
        if (!keep && disturb > 0.0) keep = uniform_at(disturb_seed, image, sample, index, unit) < disturb;
        bits |= static_cast<BitWord>(keep) << b;
      }
      row[word] = bits;
    }
  }
  const auto modules = static_cast<std::uint64_t>(bank.size());
  events.module_resets += modules;
  events.module_writes += modules;
  events.module_reads += s == Scheme::linear ? modules : static_cast<std::uint64_t>(mapping.in_map_rows);
}

void Chip::mask_patches(int index, Patches& patches, int row, std::uint64_t seed, std::uint64_t image,
                        std::uint64_t sample, LayerEvents& events) const {
  const auto i = static_cast<std::size_t>(index);
  const DropoutBank& bank = banks_[i];
  const LayerMapping& mapping = mapping_[i];
  const int windows = patches.out_h * patches.out_w;
  const int rows = mapping.rows;
  const int words = patches.keep.words;
  const double disturb = hw_.faults.read_disturb;
  const std::uint64_t disturb_seed = stream_seed(seed, kDisturbStream);
  if (scheme(index) == Scheme::element_per_window) {
    // A module per row, reset, written and read afresh at every window: unit = window * rows + row.
    const DropoutDraws draws(stream_seed(seed, kPerWindowStream), image, sample, index, engine_.spec().p);
    for (int m = 0; m < windows; ++m) {
      BitWord* keep = patches.keep.row(row + m);
      const std::uint64_t window_unit = static_cast<std::uint64_t>(m) * static_cast<std::uint64_t>(rows);
      for (int word = 0; word < words; ++word) {
        const int first = word * kBitsPerWord;
        const int count = std::min(kBitsPerWord, rows - first);
        BitWord bits = 0;
        if (disturb == 0.0) {
          // Module first + b draws unit window_unit + first + b against its own bound.
          bits = draws.keep_bits(window_unit + static_cast<std::uint64_t>(first), 1, count, bank.drop_bounds() + first);
        } else {
          for (int b = 0; b < count; ++b) {
            const std::uint64_t unit = window_unit + static_cast<std::uint64_t>(first + b);
            bool kept = draws.draw53(unit) >= bank.drop_bound(first + b);
            if (!kept && disturb > 0.0) kept = uniform_at(disturb_seed, image, sample, index, unit) < disturb;
            bits |= static_cast<BitWord>(kept) << b;
          }
        }
        keep[word] &= bits;
      }
    }
    const auto n = static_cast<std::uint64_t>(windows) * static_cast<std::uint64_t>(rows);
    events.module_resets += n;
    events.module_writes += n;
    events.module_reads += n;
  } else {
    // Spatial modules under read disturb: a dropped module is read at every window, in raster
    // order, and each read flips it to P with probability q; the first flipping read is
    // geometric: floor(ln(1 - u) / ln(1 - q)).
    const DropoutDraws draws(seed, image, sample, index, engine_.spec().p);
    const int channels = bank.size();
    const int taps = rows / channels;
    std::vector<std::int64_t> flips_at(static_cast<std::size_t>(channels), -1);  // -1: kept throughout
    for (int c = 0; c < channels; ++c) {
      const auto unit = static_cast<std::uint64_t>(c);
      if (draws.draw53(unit) >= bank.drop_bound(c)) continue;
      const double u = uniform_at(disturb_seed, image, sample, index, unit);
      const double first = std::floor(std::log1p(-u) / std::log1p(-disturb));
      flips_at[static_cast<std::size_t>(c)] =
          first < static_cast<double>(windows) ? static_cast<std::int64_t>(first) : std::int64_t{windows};
    }
    std::vector<BitWord> pattern(static_cast<std::size_t>(words));
    for (int m = 0; m < windows; ++m) {
      std::fill(pattern.begin(), pattern.end(), 0);
      for (int c = 0; c < channels; ++c) {
        const std::int64_t f = flips_at[static_cast<std::size_t>(c)];
        if (f >= 0 && m < f) continue;  // still dropped at this window
        for (int tap = 0; tap < taps; ++tap) {
          const int bit = tap * channels + c;
          pattern[static_cast<std::size_t>(bit / kBitsPerWord)] |= BitWord{1} << (bit % kBitsPerWord);
        }
      }
      BitWord* keep = patches.keep.row(row + m);
      for (int word = 0; word < words; ++word) keep[word] &= pattern[static_cast<std::size_t>(word)];
    }
    const auto c = static_cast<std::uint64_t>(channels);
    events.module_resets += c;
    events.module_writes += c;
    events.module_reads += c * static_cast<std::uint64_t>(windows);
  }
  for (int m = 0; m < windows; ++m) {
    const BitWord* keep = patches.keep.row(row + m);
    int kept = 0;
    for (int word = 0; word < words; ++word) kept += std::popcount(keep[word]);
    patches.kept[static_cast<std::size_t>(row + m)] = kept;
  }
}

BitMatrix Chip::sense(int index, const Patches& patches, int row, const std::int32_t* dots, bool masked,
                      LayerEvents& events) const {
  const EngineLayer& l = engine_.layers()[static_cast<std::size_t>(index)];
  const int windows = patches.out_h * patches.out_w;
  const int out_c = l.shape.out_channels;
  BitMatrix signs(windows, out_c);
  const CrossbarLayer& array = arrays_[static_cast<std::size_t>(index)];
  const std::int32_t* bound = l.dot_bound[masked ? 1 : 0].data();
  for (int m = 0; m < windows; ++m) {
    array.sense_row(patches, row + m, dots + static_cast<std::size_t>(m) * out_c, l.dot_sign.data(), bound,
                    signs.row(m), events);
  }
  return signs;
}

void Chip::read_out(int index, const Patches& patches, int row, const std::int32_t* dots, double* sums,
                    LayerEvents& events) const {
  arrays_[static_cast<std::size_t>(index)].read_row(patches, row, dots, sums, events);
}

}  // namespace spinbayes
