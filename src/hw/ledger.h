#pragma once
// The event ledger: what a simulated run did, per layer, for the cost model to price. Counting
// conventions (the analytic counts of the cost model follow the same ones), per pass of a layer
// (once per image for layers before the first dropout site, once per MC sample after it):
//   wordline_drives     rows driven at each window (inside the map and kept), times column tiles
//   cell_reads          driven rows x columns: cells that conduct read current
//   sense_decisions     hidden layers held in one row tile: one per (window, column)
//   adc_conversions     columns spanning several row tiles, and the output layer: one per
//                       (window, column, row tile)
//   digital_accumulates one per ADC conversion (the partial sum added into its accumulator)
//   digital_macs        the first layer's real-input multiply-accumulates (digital unit)
//   module_resets/writes/reads  dropout modules: spatial modules are reset and written once per
//                       pass and read at every window; element modules (per_window) are reset,
//                       written and read at every window; per_element modules once per input
//                       element and read at each tap inside the map; linear layers once per input.
#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "hw/mapping.h"

namespace spinbayes {

struct LayerEvents {
  std::uint64_t module_resets = 0, module_writes = 0, module_reads = 0;
  std::uint64_t wordline_drives = 0, cell_reads = 0;
  std::uint64_t sense_decisions = 0, adc_conversions = 0, digital_accumulates = 0, digital_macs = 0;

  LayerEvents& operator+=(const LayerEvents& o);
  bool operator==(const LayerEvents&) const = default;
};

struct Ledger {
  std::uint64_t images = 0;
  int samples = 0;                  // MC samples per image
  std::vector<LayerEvents> layers;  // indexed like the model's layers

  Ledger& operator+=(const Ledger& o);  // adds events (images must be summed by the caller)
  LayerEvents total() const;
};

// {"images", "samples", "layers": [{"name", ...events}], "total": {...events}}
nlohmann::json ledger_json(const Ledger& ledger, const std::vector<LayerMapping>& mapping);
nlohmann::json events_json(const LayerEvents& events);

}  // namespace spinbayes
