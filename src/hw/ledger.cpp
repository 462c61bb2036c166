#include "hw/ledger.h"

#include <nlohmann/json.hpp>

namespace spinbayes {

namespace {

template <typename T>
nlohmann::json tally_json(const EventTally<T>& e) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, member] : EventTally<T>::kinds()) j[name] = e.*member;
  return j;
}

}  // namespace

nlohmann::json events_json(const LayerEvents& events) { return tally_json(events); }
nlohmann::json events_json(const EventCounts& events) { return tally_json(events); }

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
