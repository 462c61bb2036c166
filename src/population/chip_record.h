#pragma once
// One evaluated member of a chip population, as stored in DIR/chips/: the figures of one
// simulated chip (or of the software engine, the reference), and the fingerprint of the
// population's configuration it belongs to, so that a record of another model or configuration is
// never mixed in.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spinbayes {

struct ChipRecord {
  std::string population;       // fingerprint of the configuration (model, hardware, evaluation)
  bool software = false;        // the software engine's figures, not a chip's
  std::uint64_t chip_seed = 0;  // which simulated chip
  std::vector<std::pair<std::string, double>> metrics;  // name -> finite value, in a fixed order

  const double* metric(const std::string& name) const;
};

// The record as one line of JSON (keys in a fixed order; every double written so it reads back to
// the same bits).
std::string chip_record_json(const ChipRecord& record);
// Parses a record; `name` (the file) starts every error. Throws Error on anything but a record
// that chip_record_json could have written: unknown keys, a metric that is not a finite number,
// a metric name outside [A-Za-z0-9._:/-] or longer than 256, a seed that is not a whole number.
ChipRecord parse_chip_record(std::string_view text, const std::string& name);

// DIR/population.json: what a population's chips were evaluated with (`identity`, a JSON object
// of settings) and its fingerprint (core/fingerprint.h), which every record carries.
std::string population_manifest_json(const std::string& identity_json);
// The identity a manifest holds, as compact JSON. Throws Error("<name>: ...") on anything else.
std::string parse_population_manifest(std::string_view text, const std::string& name);
// The first setting in which two identities differ, as "KEY is X there, Y here" (empty: none).
std::string identity_difference(const std::string& there_json, const std::string& here_json);
// The first difference between the identity the manifest file holds and `identity` (empty: none).
// Throws Error("<manifest>: ...") when the file is not a manifest.
std::string manifest_difference(const std::filesystem::path& manifest, const std::string& identity);

}  // namespace spinbayes
