#include "hw/chip.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <tuple>

#include "core/streams.h"
#include "model/dropout_mask.h"

namespace spinbayes {

namespace {

// Of a dropped module read `reads` times, each read flipping it to P with probability q, the read
// that flips it (0-based; `reads` when none does), from its uniform u: the first success of a
// geometric law, floor(ln(1 - u) / ln(1 - q)).
std::int64_t first_disturbing_read(double u, double q, std::int64_t reads) {
  const double first = std::floor(std::log1p(-u) / std::log1p(-q));
  return first < static_cast<double>(reads) ? static_cast<std::int64_t>(first) : reads;
}

}  // namespace

// ---- ChipMasks: the dropout modules --------------------------------------------------------------

ChipMasks::ChipMasks(std::shared_ptr<const CompiledModel> model, const HardwareConfig& hw,
                     std::vector<LayerMapping> mapping, std::uint64_t chip_seed)
    : model_(std::move(model)),
      read_disturb_(hw.faults.read_disturb),
      element_masks_(hw.dropout_module.element_masks),
      mapping_(std::move(mapping)) {
  const auto& layers = model_->layers();
  banks_.resize(layers.size());
  uniform_bank_.assign(layers.size(), true);
  for (std::size_t i = 1; i < layers.size(); ++i) {
    if (!layers[i].shape.dropout_before) continue;
    const EngineLayer& l = layers[i];
    int modules = 0;
    switch (layout(static_cast<int>(i))) {
      case ModuleLayout::spatial: modules = l.in_c; break;
      case ModuleLayout::element_per_window: modules = mapping_[i].rows; break;
      case ModuleLayout::element_per_element:
      case ModuleLayout::linear: modules = l.in_c * l.in_h * l.in_w; break;
    }
    banks_[i] = DropoutBank(hw, l.shape.dropout_p, modules, chip_seed, static_cast<int>(i));
    const std::uint64_t software = DropoutDraws::bound_for(l.shape.dropout_p);
    uniform_bank_[i] = !banks_[i].fluctuates();
    for (int m = 0; m < modules && uniform_bank_[i]; ++m) uniform_bank_[i] = banks_[i].drop_bound(m) == software;
  }
}

ModuleLayout ChipMasks::layout(int layer) const {
  if (mapping_[static_cast<std::size_t>(layer)].linear) return ModuleLayout::linear;
  if (model_->layer(layer).shape.dropout_kind == DropoutKind::spatial) return ModuleLayout::spatial;
  return element_masks_ == ElementMasks::per_window ? ModuleLayout::element_per_window
                                                    : ModuleLayout::element_per_element;
}

MaskGrain ChipMasks::grain(int layer) const {
  switch (layout(layer)) {
    case ModuleLayout::spatial: return read_disturb_ > 0.0 ? MaskGrain::window : MaskGrain::channel;
    case ModuleLayout::element_per_window: return MaskGrain::window;
    case ModuleLayout::element_per_element: return read_disturb_ > 0.0 ? MaskGrain::window : MaskGrain::element;
    case ModuleLayout::linear: return MaskGrain::element;
  }
  return MaskGrain::element;
}

void ChipMasks::channel_keep(const MaskKey& key, std::vector<BitWord>& keep, LayerEvents& events) const {
  // One module per channel: reset and written once, read at every window. Module c draws unit c
  // against its own bound.
  const DropoutBank& bank = banks_[static_cast<std::size_t>(key.layer)];
  const int channels = bank.size();
  const DropoutDraws draws(key.seed, key.image, key.sample, key.layer, model_->layer(key.layer).shape.dropout_p);
  const std::uint64_t* bounds = bank.pass_bounds(key.seed, key.image, key.sample);
  keep.resize(static_cast<std::size_t>(words_for_bits(channels)));
  for (int word = 0; word < words_for_bits(channels); ++word) {
    const int first = word * kBitsPerWord;
    keep[static_cast<std::size_t>(word)] = draws.keep_bits(static_cast<std::uint64_t>(first), 1,
                                                           std::min(kBitsPerWord, channels - first), bounds + first);
  }
  const auto c = static_cast<std::uint64_t>(channels);
  std::uint64_t kept = 0;
  for (const BitWord w : keep) kept += static_cast<std::uint64_t>(std::popcount(w));
  const auto windows = static_cast<std::uint64_t>(mapping_[static_cast<std::size_t>(key.layer)].windows);
  events.module_resets += c;
  events.module_writes += c;
  events.module_reads += c * windows;
  events.module_writes_ap += c - kept;  // a dropped channel's module stays in AP through the pass
  events.module_reads_ap += (c - kept) * windows;
}

void ChipMasks::mask_map(const MaskKey& key, BinaryMap& map, LayerEvents& events) const {
  const int index = key.layer;
  const std::uint64_t seed = key.seed, image = key.image, sample = key.sample;
  const auto i = static_cast<std::size_t>(index);
  const DropoutBank& bank = banks_[i];
  const LayerMapping& mapping = mapping_[i];
  const DropoutDraws draws(seed, image, sample, index, model_->layer(index).shape.dropout_p);
  const std::uint64_t* bounds = bank.pass_bounds(seed, image, sample);
  map.keep = BitMatrix(map.height * map.width, map.channels);
  const ModuleLayout s = layout(index);
  // One module per input element (per_element, linear): unit = (c * H + y) * W + x, as the
  // software masks number them.
  const auto plane = static_cast<std::uint64_t>(map.height) * map.width;
  const double disturb = s == ModuleLayout::linear ? read_disturb_ : 0.0;
  const std::uint64_t disturb_seed = stream_seed(seed, streams::kReadDisturb);
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
        bool keep = draws.draw53(unit) >= bounds[unit];
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
  events.module_reads += s == ModuleLayout::linear ? modules : static_cast<std::uint64_t>(mapping.in_map_rows);
  // The modules left in AP, and the reads that find them there: a linear layer reads each module
  // once; a convolution reads element (c, y, x) at every tap that lands on it, taps_y[y] x taps_x[x].
  const EngineLayer& layer = model_->layer(index);
  const bool linear = s == ModuleLayout::linear;
  std::vector<std::int64_t> taps_y, taps_x;
  if (!linear) {
    taps_y = taps_landing(layer.shape.out_h, map.height, layer.kernel, layer.stride, layer.padding);
    taps_x = taps_landing(layer.shape.out_w, map.width, layer.kernel, layer.stride, layer.padding);
  }
  for (int pix = 0; pix < map.height * map.width; ++pix) {
    const BitWord* row = map.keep.row(pix);
    std::uint64_t kept = 0;
    for (int word = 0; word < map.keep.words; ++word) kept += static_cast<std::uint64_t>(std::popcount(row[word]));
    const std::uint64_t dropped = static_cast<std::uint64_t>(map.channels) - kept;
    events.module_writes_ap += dropped;
    events.module_reads_ap +=
        linear ? dropped
               : dropped * static_cast<std::uint64_t>(taps_y[static_cast<std::size_t>(pix / map.width)] *
                                                      taps_x[static_cast<std::size_t>(pix % map.width)]);
  }
}

void ChipMasks::mask_patches(const MaskKey& key, Patches& patches, int row, LayerEvents& events) const {
  const int index = key.layer;
  const std::uint64_t seed = key.seed, image = key.image, sample = key.sample;
  const auto i = static_cast<std::size_t>(index);
  const DropoutBank& bank = banks_[i];
  const LayerMapping& mapping = mapping_[i];
  const int windows = patches.out_h * patches.out_w;
  const int rows = mapping.rows;
  const int words = patches.keep.words;
  const double disturb = read_disturb_;
  const std::uint64_t disturb_seed = stream_seed(seed, streams::kReadDisturb);
  const std::uint64_t* bounds = bank.pass_bounds(seed, image, sample);
  if (layout(index) == ModuleLayout::element_per_window) {
    // A module per row, reset, written and read afresh at every window: unit = window * rows + row.
    const DropoutDraws draws(stream_seed(seed, streams::kPerWindowMasks), image, sample, index,
                             model_->layer(index).shape.dropout_p);
    for (int m = 0; m < windows; ++m) {
      BitWord* keep = patches.keep.row(row + m);
      const std::uint64_t window_unit = static_cast<std::uint64_t>(m) * static_cast<std::uint64_t>(rows);
      for (int word = 0; word < words; ++word) {
        const int first = word * kBitsPerWord;
        const int count = std::min(kBitsPerWord, rows - first);
        BitWord bits = 0;
        if (disturb == 0.0) {
          // Module first + b draws unit window_unit + first + b against its own bound.
          bits = draws.keep_bits(window_unit + static_cast<std::uint64_t>(first), 1, count, bounds + first);
        } else {
          for (int b = 0; b < count; ++b) {
            const std::uint64_t unit = window_unit + static_cast<std::uint64_t>(first + b);
            bool kept = draws.draw53(unit) >= bounds[first + b];
            if (!kept && disturb > 0.0) kept = uniform_at(disturb_seed, image, sample, index, unit) < disturb;
            bits |= static_cast<BitWord>(kept) << b;
          }
        }
        keep[word] &= bits;
        // Each module is read once, right after its write: what it holds then is what it left.
        const auto dropped = static_cast<std::uint64_t>(count - std::popcount(bits));
        events.module_writes_ap += dropped;
        events.module_reads_ap += dropped;
      }
    }
    const auto n = static_cast<std::uint64_t>(windows) * static_cast<std::uint64_t>(rows);
    events.module_resets += n;
    events.module_writes += n;
    events.module_reads += n;
  } else if (layout(index) == ModuleLayout::element_per_element) {
    element_modules_disturbed(key, patches, row, events);
  } else {
    // Spatial modules under read disturb: a dropped module is read at every window, in raster
    // order, and each read flips it to P with probability q; the first flipping read is
    // geometric: floor(ln(1 - u) / ln(1 - q)).
    const DropoutDraws draws(seed, image, sample, index, model_->layer(index).shape.dropout_p);
    const int channels = bank.size();
    const int taps = rows / channels;
    std::vector<std::int64_t> flips_at(static_cast<std::size_t>(channels), -1);  // -1: kept throughout
    for (int c = 0; c < channels; ++c) {
      const auto unit = static_cast<std::uint64_t>(c);
      if (draws.draw53(unit) >= bounds[c]) continue;
      flips_at[static_cast<std::size_t>(c)] =
          first_disturbing_read(uniform_at(disturb_seed, image, sample, index, unit), disturb, windows);
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
    // A dropped module read in AP until the read that flips it (which senses P); one never
    // flipped is still in AP for the next reset.
    for (const std::int64_t f : flips_at) {
      if (f < 0) continue;
      events.module_reads_ap += static_cast<std::uint64_t>(f);
      if (f >= windows) ++events.module_writes_ap;
    }
  }
  count_kept(patches, row, windows);
}

void ChipMasks::count_kept(Patches& patches, int row, int windows) {
  const int words = patches.keep.words;
  for (int m = 0; m < windows; ++m) {
    const BitWord* keep = patches.keep.row(row + m);
    int kept = 0;
    for (int word = 0; word < words; ++word) kept += std::popcount(keep[word]);
    patches.kept[static_cast<std::size_t>(row + m)] = kept;
  }
}

void ChipMasks::element_modules_disturbed(const MaskKey& key, Patches& patches, int row, LayerEvents& events) const {
  // One module per input element under read disturb: module (c, y, x), unit (c H + y) W + x as in
  // mask_map, is read at every window whose taps land on it, taps_y[y] x taps_x[x] reads in the
  // windows' raster order (a window reads an element at most once). A dropped module flips to P
  // at its first disturbing read, floor(ln(1 - u) / ln(1 - q)) as the spatial modules', and every
  // later read finds it kept.
  const int index = key.layer;
  const EngineLayer& layer = model_->layer(index);
  const DropoutBank& bank = banks_[static_cast<std::size_t>(index)];
  const DropoutDraws draws(key.seed, key.image, key.sample, index, layer.shape.dropout_p);
  const std::uint64_t* bounds = bank.pass_bounds(key.seed, key.image, key.sample);
  const std::uint64_t disturb_seed = stream_seed(key.seed, streams::kReadDisturb);
  const int channels = layer.in_c, height = layer.in_h, width = layer.in_w, kernel = layer.kernel;
  const std::vector<std::int64_t> taps_y = taps_landing(patches.out_h, height, kernel, layer.stride, layer.padding);
  const std::vector<std::int64_t> taps_x = taps_landing(patches.out_w, width, kernel, layer.stride, layer.padding);
  const auto units = static_cast<std::size_t>(channels) * static_cast<std::size_t>(height * width);
  // Per module: the read that flips it (its reads when none does), -1 while kept; and its reads so far.
  std::vector<std::int64_t> flips_at(units, -1), reads(units, 0);
  for (std::size_t unit = 0; unit < units; ++unit) {
    if (draws.draw53(unit) >= bounds[unit]) continue;
    const auto pix = static_cast<int>(unit % static_cast<std::size_t>(height * width));
    const std::int64_t landing = taps_y[static_cast<std::size_t>(pix / width)] * taps_x[static_cast<std::size_t>(pix % width)];
    flips_at[unit] =
        first_disturbing_read(uniform_at(disturb_seed, key.image, key.sample, index, unit), read_disturb_, landing);
    events.module_reads_ap += static_cast<std::uint64_t>(flips_at[unit]);
    if (flips_at[unit] >= landing) ++events.module_writes_ap;  // never flipped: in AP for the next reset
  }
  for (int oy = 0; oy < patches.out_h; ++oy) {
    for (int ox = 0; ox < patches.out_w; ++ox) {
      BitWord* keep = patches.keep.row(row + oy * patches.out_w + ox);
      for (int ky = 0; ky < kernel; ++ky) {
        const int y = oy * layer.stride - layer.padding + ky;
        if (y < 0 || y >= height) continue;
        for (int kx = 0; kx < kernel; ++kx) {
          const int x = ox * layer.stride - layer.padding + kx;
          if (x < 0 || x >= width) continue;
          for (int c = 0; c < channels; ++c) {
            const auto unit = (static_cast<std::size_t>(c) * height + y) * width + x;
            const std::int64_t f = flips_at[unit];
            if (f < 0 || reads[unit]++ >= f) continue;  // kept, or flipped by an earlier read
            const int bit = (ky * kernel + kx) * channels + c;  // the patch's (ky, kx, c) order
            keep[bit / kBitsPerWord] &= ~(BitWord{1} << (bit % kBitsPerWord));
          }
        }
      }
    }
  }
  const auto modules = static_cast<std::uint64_t>(units);
  events.module_resets += modules;
  events.module_writes += modules;
  events.module_reads += static_cast<std::uint64_t>(mapping_[static_cast<std::size_t>(index)].in_map_rows);
}

// ---- ChipArrays: the crossbars -------------------------------------------------------------------

ChipArrays::ChipArrays(std::shared_ptr<const CompiledModel> model, const HardwareConfig& hw,
                       const std::vector<LayerMapping>& mapping, std::uint64_t chip_seed)
    : model_(std::move(model)) {
  const auto& layers = model_->layers();
  arrays_.resize(layers.size());
  // Dead tiles: the faults.dead_tiles tiles of the chip with the smallest draws (every tile when
  // there are fewer).
  if (hw.faults.dead_tiles > 0) {
    std::vector<std::pair<double, DeadTile>> tiles;
    for (std::size_t i = 1; i < layers.size(); ++i) {
      for (int rt = 0; rt < mapping[i].row_tiles; ++rt) {
        for (int ct = 0; ct < mapping[i].col_tiles; ++ct) {
          const double u = uniform_at(chip_seed, streams::kDeadTile, i, static_cast<std::uint64_t>(rt),
                                      static_cast<std::uint64_t>(ct));
          tiles.push_back({u, DeadTile{static_cast<int>(i), rt, ct}});
        }
      }
    }
    const std::size_t n = std::min(tiles.size(), static_cast<std::size_t>(hw.faults.dead_tiles));
    std::partial_sort(tiles.begin(), tiles.begin() + static_cast<std::ptrdiff_t>(n), tiles.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t k = 0; k < n; ++k) dead_.push_back(tiles[k].second);
    std::sort(dead_.begin(), dead_.end(), [](const DeadTile& a, const DeadTile& b) {
      return std::tie(a.layer, a.row_tile, a.col_tile) < std::tie(b.layer, b.row_tile, b.col_tile);
    });
  }
  for (std::size_t i = 1; i < layers.size(); ++i) {
    std::vector<std::pair<int, int>> dead;
    for (const DeadTile& d : dead_) {
      if (d.layer == static_cast<int>(i)) dead.emplace_back(d.row_tile, d.col_tile);
    }
    arrays_[i] = CrossbarLayer(hw, mapping[i], layers[i].weights, chip_seed, static_cast<int>(i), dead);
  }
}

void ChipArrays::sense(int layer, const PatchRows& patches, int row, int windows, const std::int32_t* dots,
                       bool masked, const BitMatrix* shortcut, BitMatrix& signs, LayerEvents& events) const {
  const EngineLayer& l = model_->layer(layer);
  const int out_c = l.shape.out_channels;
  const CrossbarLayer& array = arrays_[static_cast<std::size_t>(layer)];
  thread_local std::vector<std::int32_t> selected;
  for (int m = 0; m < windows; ++m) {
    // A residual block's column compares against one of two references, chosen by the shortcut bit.
    const std::int32_t* bound = l.bounds(masked, shortcut != nullptr ? shortcut->row(m) : nullptr, selected);
    array.sense_row(patches, row + m, dots + static_cast<std::size_t>(m) * out_c, l.dot_sign.data(), bound,
                    signs.row(m), events);
  }
}

void ChipArrays::read_out(int layer, const PatchRows& patches, int row, const std::int32_t* dots, double* sums,
                          LayerEvents& events) const {
  arrays_[static_cast<std::size_t>(layer)].read_row(patches, row, dots, sums, events);
}

// ---- Chip --------------------------------------------------------------------------------------

Chip::Chip(const ModelIR& ir, const HardwareConfig& hw, std::uint64_t chip_seed)
    : model_(std::make_shared<const CompiledModel>(ir)) {
  HardwareConfig checked = hw;
  checked.validate();
  mapping_ = map_layers(ir.spec, checked.crossbar);
  masks_ = std::make_shared<const ChipMasks>(model_, checked, mapping_, chip_seed);
  arrays_ = std::make_shared<const ChipArrays>(model_, checked, mapping_, chip_seed);
}

}  // namespace spinbayes
