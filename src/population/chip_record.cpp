#include "population/chip_record.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fingerprint.h"
#include "core/read_file.h"

namespace spinbayes {

const double* ChipRecord::metric(const std::string& name) const {
  for (const auto& [key, value] : metrics) {
    if (key == name) return &value;
  }
  return nullptr;
}

std::string chip_record_json(const ChipRecord& r) {
  // ordered_json keeps the metrics in the record's order.
  nlohmann::ordered_json j;
  j["format"] = "spinbayes-chip";
  j["version"] = 1;
  j["population"] = r.population;
  if (r.software) {
    j["chip"] = "software";
  } else {
    j["chip"] = r.chip_seed;
  }
  nlohmann::ordered_json metrics = nlohmann::ordered_json::object();
  for (const auto& [key, value] : r.metrics) metrics[key] = value;
  j["metrics"] = std::move(metrics);
  return j.dump() + "\n";
}

namespace {

bool metric_name(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == ':' || c == '/' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A JSON object of this format and version 1, or an Error naming `name`.
nlohmann::ordered_json parse_versioned(std::string_view text, const std::string& name, const char* format,
                                       const char* what) {
  if (text.find('\0') != std::string_view::npos) throw Error(name + ": not valid JSON (holds a NUL byte)");
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw Error(name + ": not valid JSON");
  }
  if (!j.is_object() || j.value("format", nlohmann::ordered_json()) != format) {
    throw Error(name + ": not a spinbayes " + what + " (\"format\": \"" + format + "\")");
  }
  if (j.value("version", nlohmann::ordered_json()) != 1) throw Error(name + ": unsupported version (this build reads 1)");
  return j;
}

}  // namespace

ChipRecord parse_chip_record(std::string_view text, const std::string& name) {
  const nlohmann::ordered_json j = parse_versioned(text, name, "spinbayes-chip", "chip record");
  for (const auto& [key, value] : j.items()) {
    if (key != "format" && key != "version" && key != "population" && key != "chip" && key != "metrics") {
      throw Error(name + ": unknown key '" + printable(key, true) + "'");
    }
    (void)value;
  }
  ChipRecord r;
  if (!j.contains("population") || !j.at("population").is_string()) {
    throw Error(name + ": population: missing or not a string");
  }
  r.population = j.at("population").get<std::string>();
  if (!j.contains("chip")) throw Error(name + ": chip: missing");
  const auto& chip = j.at("chip");
  if (chip == "software") {
    r.software = true;
  } else if (chip.is_number_unsigned()) {
    r.chip_seed = chip.get<std::uint64_t>();
  } else {
    throw Error(name + ": chip: not a chip seed (a whole number) or \"software\"");
  }
  if (!j.contains("metrics") || !j.at("metrics").is_object()) throw Error(name + ": metrics: missing or not an object");
  for (const auto& [key, value] : j.at("metrics").items()) {
    if (!metric_name(key)) throw Error(name + ": metrics: '" + printable(key, true) + "' is not a metric name");
    if (!value.is_number() || !std::isfinite(value.get<double>())) {
      throw Error(name + ": metrics." + key + ": not a finite number");
    }
    r.metrics.emplace_back(key, value.get<double>());
  }
  return r;
}

std::string population_manifest_json(const std::string& identity_json) {
  nlohmann::ordered_json j;
  j["format"] = "spinbayes-population";
  j["version"] = 1;
  j["fingerprint"] = fingerprint(identity_json);
  j["identity"] = nlohmann::ordered_json::parse(identity_json);
  return j.dump(2) + "\n";
}

std::string parse_population_manifest(std::string_view text, const std::string& name) {
  const nlohmann::ordered_json j = parse_versioned(text, name, "spinbayes-population", "chip population");
  if (!j.contains("identity") || !j.at("identity").is_object()) throw Error(name + ": identity: missing or not an object");
  const std::string identity = j.at("identity").dump();
  if (j.value("fingerprint", nlohmann::ordered_json()) != fingerprint(identity)) {
    throw Error(name + ": fingerprint: missing or not the identity's (the file was edited)");
  }
  return identity;
}

std::string identity_difference(const std::string& there_json, const std::string& here_json) {
  const auto there = nlohmann::ordered_json::parse(there_json), here = nlohmann::ordered_json::parse(here_json);
  const auto shown = [](const nlohmann::ordered_json& v) {
    std::string s = v.dump();
    return printable(s.size() > 80 ? s.substr(0, 77) + "..." : s, true);
  };
  for (const auto& [key, value] : here.items()) {
    if (!there.contains(key)) return printable(key, true) + " is not there, " + shown(value) + " here";
    if (there.at(key) != value) return printable(key, true) + " is " + shown(there.at(key)) + " there, " + shown(value) + " here";
  }
  for (const auto& [key, value] : there.items()) {
    if (!here.contains(key)) return printable(key, true) + " is " + shown(value) + " there, not here";
  }
  return "";
}

std::string manifest_difference(const std::filesystem::path& manifest, const std::string& identity) {
  return identity_difference(parse_population_manifest(read_file_bytes(manifest, 1 << 20), manifest.string()), identity);
}

}  // namespace spinbayes
