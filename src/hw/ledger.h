#pragma once
// The event ledger as JSON: what a simulated run did, per layer (the counts and their conventions:
// engine/events.h), named by the chip's layer mapping.
#include <nlohmann/json_fwd.hpp>

#include "engine/events.h"
#include "hw/mapping.h"

namespace spinbayes {

// {"images", "samples", "layers": [{"name", ...events}], "total": {...events}}
nlohmann::json ledger_json(const Ledger& ledger, const std::vector<LayerMapping>& mapping);
nlohmann::json events_json(const LayerEvents& events);
nlohmann::json events_json(const EventCounts& events);

}  // namespace spinbayes
