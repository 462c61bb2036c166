#include "population/field_test.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text.h"

namespace spinbayes {

std::vector<VectorRank> rank_by_repeatability(const std::vector<std::vector<double>>& entropy) {
  if (entropy.size() < 2) throw Error("repeatability ranking: needs at least two fault-free runs");
  const std::size_t n = entropy.front().size();
  for (const auto& run : entropy) {
    if (run.size() != n) throw Error("repeatability ranking: runs of different candidates");
  }
  const double runs = static_cast<double>(entropy.size());
  std::vector<VectorRank> ranks(n);
  for (std::size_t i = 0; i < n; ++i) {
    double mean = 0.0;
    for (const auto& run : entropy) mean += run[i];
    mean /= runs;
    double ss = 0.0;
    for (const auto& run : entropy) ss += (run[i] - mean) * (run[i] - mean);
    const double sd = std::sqrt(ss / (runs - 1.0));
    ranks[i] = {static_cast<int>(i), mean, sd, mean / (sd + kRepeatabilityEps)};
  }
  std::stable_sort(ranks.begin(), ranks.end(), [](const VectorRank& a, const VectorRank& b) { return a.score > b.score; });
  return ranks;
}

Reference fit_reference(std::span<const double> statistics) {
  if (statistics.size() < 2) throw Error("fault-free reference: needs at least two chips");
  Reference r;
  r.chips = static_cast<int>(statistics.size());
  for (double s : statistics) r.mu += s;
  r.mu /= static_cast<double>(statistics.size());
  double ss = 0.0;
  for (double s : statistics) ss += (s - r.mu) * (s - r.mu);
  r.sigma = std::sqrt(ss / static_cast<double>(statistics.size() - 1));
  return r;
}

bool flagged(double statistic, const Reference& reference, double k) {
  return std::fabs(statistic - reference.mu) > k * reference.sigma;
}

double test_statistic(std::span<const double> entropy, int n) {
  if (n < 1 || static_cast<std::size_t>(n) > entropy.size()) {
    throw Error(fmt::format("test statistic: {} vectors of {}", n, entropy.size()));
  }
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += entropy[static_cast<std::size_t>(i)];
  return sum / n;
}

std::string chip_output_json(const ChipOutput& output, const std::string& test) {
  return nlohmann::json{{"test", test}, {"entropy", output.entropy}, {"predicted", output.predicted}}.dump();
}

ChipOutput parse_chip_output(std::string_view text, const std::string& test, std::size_t n, const std::string& name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw Error(name + ": not valid JSON");
  }
  if (!j.is_object()) throw Error(name + ": not a chip record (expected a JSON object)");
  const auto member = [&](const char* key) -> const nlohmann::json& {
    const auto it = j.find(key);
    if (it == j.end()) throw Error(name + ": '" + key + "' missing");
    return *it;
  };
  const nlohmann::json& key = member("test");
  if (!key.is_string() || key.get<std::string>() != test) {
    throw Error(name + ": a chip of another test (" + printable(key.is_string() ? key.get<std::string>() : key.dump(), true) +
                ", not " + printable(test, true) + ")");
  }
  const nlohmann::json& entropy = member("entropy");
  const nlohmann::json& predicted = member("predicted");
  if (!entropy.is_array() || !predicted.is_array() || entropy.size() != n || predicted.size() != n) {
    throw Error(fmt::format("{}: expected {} entropies and {} predictions", name, n, n));
  }
  ChipOutput c;
  for (const auto& e : entropy) {
    if (!e.is_number() || !std::isfinite(e.get<double>()) || e.get<double>() < 0.0 || e.get<double>() > 50.0) {
      throw Error(name + ": entropy: " + printable(e.dump(), true) + " is not a number in [0, 50]");
    }
    c.entropy.push_back(e.get<double>());
  }
  for (const auto& p : predicted) {
    if (!p.is_number_integer() || p.get<std::int64_t>() < 0 || p.get<std::int64_t>() > 1000000) {
      throw Error(name + ": predicted: " + printable(p.dump(), true) + " is not a class in [0, 1000000]");
    }
    c.predicted.push_back(static_cast<int>(p.get<std::int64_t>()));
  }
  return c;
}

std::vector<int> vector_counts(int k) {
  std::vector<int> counts;
  for (const int d : {16, 8, 4, 2, 1}) {
    const int n = std::max(1, static_cast<int>(std::lround(static_cast<double>(k) / d)));
    if (counts.empty() || counts.back() != n) counts.push_back(n);
  }
  return counts;
}

int parse_vector_count(const std::string& text, int training_images) {
  const bool percent = !text.empty() && text.back() == '%';
  const std::string number = percent ? text.substr(0, text.size() - 1) : text;
  const Error malformed("--vectors: '" + printable(text) + "' is neither a count nor a percentage (e.g. 120 or 0.2%)");
  if (number.empty() || !(number[0] >= '0' && number[0] <= '9')) throw malformed;
  double value = 0.0;
  try {
    value = parse_number("--vectors", number);
  } catch (const Error&) {
    throw malformed;
  }
  if (!percent && value != std::floor(value)) throw Error("--vectors: a count must be a whole number, got " + number);
  const double k = percent ? std::round(value / 100.0 * training_images) : value;
  if (value <= 0.0 || (percent && value > 100.0)) {
    throw Error("--vectors: must be more than 0" + std::string(percent ? " and at most 100%" : "") + ", got " + printable(text));
  }
  if (k > training_images) {
    throw Error(fmt::format("--vectors: {} test vectors are more than the run's {} training images", k, training_images));
  }
  return std::max(1, static_cast<int>(k));
}

}  // namespace spinbayes
