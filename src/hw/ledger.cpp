#include "hw/ledger.h"

#include <nlohmann/json.hpp>

namespace spinbayes {

LayerEvents& LayerEvents::operator+=(const LayerEvents& o) {
  module_resets += o.module_resets;
  module_writes += o.module_writes;
  module_reads += o.module_reads;
  wordline_drives += o.wordline_drives;
  cell_reads += o.cell_reads;
  sense_decisions += o.sense_decisions;
  adc_conversions += o.adc_conversions;
  digital_accumulates += o.digital_accumulates;
  digital_macs += o.digital_macs;
  return *this;
}

Ledger& Ledger::operator+=(const Ledger& o) {
  if (layers.size() < o.layers.size()) layers.resize(o.layers.size());
  for (std::size_t i = 0; i < o.layers.size(); ++i) layers[i] += o.layers[i];
  return *this;
}

LayerEvents Ledger::total() const {
  LayerEvents t;
  for (const auto& l : layers) t += l;
  return t;
}

nlohmann::json events_json(const LayerEvents& e) {
  return {{"module_resets", e.module_resets},     {"module_writes", e.module_writes},
          {"module_reads", e.module_reads},       {"wordline_drives", e.wordline_drives},
          {"cell_reads", e.cell_reads},           {"sense_decisions", e.sense_decisions},
          {"adc_conversions", e.adc_conversions}, {"digital_accumulates", e.digital_accumulates},
          {"digital_macs", e.digital_macs}};
}

nlohmann::json ledger_json(const Ledger& ledger, const std::vector<LayerMapping>& mapping) {
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t i = 0; i < ledger.layers.size(); ++i) {
    nlohmann::json l = events_json(ledger.layers[i]);
    l["name"] = i < mapping.size() ? mapping[i].name : "layer" + std::to_string(i);
    layers.push_back(l);
  }
  return {{"images", ledger.images}, {"samples", ledger.samples}, {"layers", layers},
          {"total", events_json(ledger.total())}};
}

}  // namespace spinbayes
