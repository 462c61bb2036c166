#pragma once
// Every independent stream of random draws, named in one place. A draw is a pure function of a
// seed, its stream's tag and its counters (core/counter_rng.h), so two streams never share draws
// and adding one changes no other.
#include <cstdint>

#include "core/counter_rng.h"

namespace spinbayes {

// FNV-1a of a name: a stable tag.
constexpr std::uint64_t name_tag(const char* s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s != 0; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 0x100000001b3ULL;
  return h;
}

// The seed of one stream derived from the user's seed.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t tag) { return hash_key(seed, tag); }

namespace streams {

// Training: dropout masks (model/dropout_mask.h keys) and the order of the training images.
inline constexpr std::uint64_t kTrainMasks = name_tag("train");
inline constexpr std::uint64_t kShuffle = name_tag("shuffle");
// Evaluation: each image set's masks come from stream_seed(seed, name_tag(set name)), the set names
// being "test", "validation" and the OOD sets' names (eval/evaluation.cpp).

// The chip's dropout modules, per pass: SpinDrop's per-window bits, and read disturb of a module.
inline constexpr std::uint64_t kPerWindowMasks = name_tag("masks.per_window");
inline constexpr std::uint64_t kReadDisturb = name_tag("masks.read_disturb");
inline constexpr std::uint64_t kSupplyLevel = name_tag("masks.supply_level");  // keys: image, sample, layer

// The chip's devices, drawn once per chip seed (keys: layer, column, row, MTJ).
inline constexpr std::uint64_t kCellResistance = name_tag("cell.rp");
inline constexpr std::uint64_t kCellTmr = name_tag("cell.tmr");
inline constexpr std::uint64_t kCellFault = name_tag("cell.fault");
inline constexpr std::uint64_t kReferenceResistance = name_tag("reference.rp");
inline constexpr std::uint64_t kReferenceTmr = name_tag("reference.tmr");
inline constexpr std::uint64_t kReferenceError = name_tag("reference.error");  // keys: layer, row tile, column tile
inline constexpr std::uint64_t kSenseOffset = name_tag("sense.offset");
inline constexpr std::uint64_t kSenseOffsetFault = name_tag("sense.offset_fault");  // its sign
inline constexpr std::uint64_t kSenseOffsetRelative = name_tag("sense.offset_relative");
inline constexpr std::uint64_t kDeadTile = name_tag("tile.dead");  // keys: layer, row tile, column tile
inline constexpr std::uint64_t kModuleDelta = name_tag("module.delta");
inline constexpr std::uint64_t kModuleIc0 = name_tag("module.ic0");
inline constexpr std::uint64_t kModuleFault = name_tag("module.fault");

// Field tests (eval/chip_test.h): the candidate test vectors, and each chip's masks from its seed.
inline constexpr std::uint64_t kTestCandidates = name_tag("field_test.candidates");
inline constexpr std::uint64_t kTestMasks = name_tag("field_test.masks");

// The IR-drop fast model's check against the nodal solver (hw/ir_drop.h): random tiles.
inline constexpr std::uint64_t kIrDropCheck = name_tag("ir_drop.check");  // keys: draw, row, column + 2

}  // namespace streams
}  // namespace spinbayes
