#pragma once
// What a run did, per layer, for the cost model to price: the event counts a backend adds to as it
// runs (an ideal backend counts only the digital first layer; the chip counts every hardware event).
// Counting conventions (the analytic counts of the cost model follow the same ones), per pass of a
// layer (once per image for layers before the first dropout site, once per MC sample after it):
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
//   module_writes_ap    the writes whose module is still in AP (dropped) when its pass ends: the
//                       resets a conditional reset performs before the next write (a part of
//                       module_writes; a module read disturb flipped back to P needs none)
//   module_reads_ap     the reads that found their module in AP (a part of module_reads; an AP
//                       module draws less read current than a P one)
// The simulator counts the last two as its modules fell; the cost model expects p of each.
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace spinbayes {

// One count per event kind: integers for what a run did (LayerEvents), doubles for what the cost
// model expects (EventCounts). kinds() lists them once, by name, for every loop over all of them.
template <typename T>
struct EventTally {
  T module_resets{}, module_writes{}, module_reads{};
  T module_writes_ap{}, module_reads_ap{};
  T wordline_drives{}, cell_reads{};
  T sense_decisions{}, adc_conversions{}, digital_accumulates{}, digital_macs{};
  // The simulator's own work, not the hardware's (not priced, not in kinds()): hidden-layer
  // decisions taken, and those the screen sent through the analog sum.
  T simulated_decisions{}, analog_decisions{};

  static constexpr std::array<std::pair<const char*, T EventTally::*>, 11> kinds() {
    return {{{"module_resets", &EventTally::module_resets},
             {"module_writes", &EventTally::module_writes},
             {"module_reads", &EventTally::module_reads},
             {"module_writes_ap", &EventTally::module_writes_ap},
             {"module_reads_ap", &EventTally::module_reads_ap},
             {"wordline_drives", &EventTally::wordline_drives},
             {"cell_reads", &EventTally::cell_reads},
             {"sense_decisions", &EventTally::sense_decisions},
             {"adc_conversions", &EventTally::adc_conversions},
             {"digital_accumulates", &EventTally::digital_accumulates},
             {"digital_macs", &EventTally::digital_macs}}};
  }
  template <typename U>
  static EventTally from(const EventTally<U>& other) {
    EventTally t;
    for (std::size_t k = 0; k < kinds().size(); ++k) {
      t.*kinds()[k].second = static_cast<T>(other.*EventTally<U>::kinds()[k].second);
    }
    return t;
  }
  EventTally& operator+=(const EventTally& o) {
    for (const auto& kind : kinds()) this->*kind.second += o.*kind.second;
    simulated_decisions += o.simulated_decisions;
    analog_decisions += o.analog_decisions;
    return *this;
  }
  EventTally scaled(T factor) const {
    EventTally t = *this;
    for (const auto& kind : kinds()) t.*kind.second *= factor;
    t.simulated_decisions *= factor;
    t.analog_decisions *= factor;
    return t;
  }
  bool operator==(const EventTally&) const = default;
};

using LayerEvents = EventTally<std::uint64_t>;
using EventCounts = EventTally<double>;  // expectations

// The events of a whole run (hw/ledger.h writes it as JSON).
struct Ledger {
  std::uint64_t images = 0;
  int samples = 0;                  // MC samples per image
  std::vector<LayerEvents> layers;  // indexed like the model's layers

  LayerEvents total() const {
    LayerEvents t;
    for (const auto& l : layers) t += l;
    return t;
  }
};

}  // namespace spinbayes
