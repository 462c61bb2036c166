#include "uncertainty/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace spinbayes {

namespace {

void check_temperature(const char* fn, double temperature) {
  if (!(std::isfinite(temperature) && temperature > 0.0)) {
    throw Error(fmt::format("{}: temperature must be a positive finite number, got {}", fn, temperature));
  }
}

std::size_t check_summary(const char* fn, const PredictiveSummary& s) {
  const std::size_t n = s.predicted.size();
  if (n == 0 || s.mean_probs.size() % n != 0 || s.mean_probs.empty() || s.entropy.size() != n) {
    throw Error(fmt::format("{}: the summary has {} inputs and {} mean probabilities", fn, n, s.mean_probs.size()));
  }
  return s.mean_probs.size() / n;
}

// log p_j / tau for one input, and their log-sum-exp: log of the rescaled distribution's normaliser.
// A probability that underflowed to 0 stays 0 (its log is -inf).
double scaled_logs(const double* p, std::size_t k, double inv_tau, double* out) {
  double top = -std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < k; ++j) {
    out[j] = p[j] > 0.0 ? std::log(p[j]) * inv_tau : -std::numeric_limits<double>::infinity();
    top = std::max(top, out[j]);
  }
  double total = 0.0;
  for (std::size_t j = 0; j < k; ++j) total += std::exp(out[j] - top);
  return top + std::log(total);
}

}  // namespace

PredictiveSummary with_temperature(PredictiveSummary s, double temperature) {
  const std::size_t k = check_summary("with_temperature", s);
  check_temperature("with_temperature", temperature);
  if (temperature == 1.0) return s;
  const std::size_t n = s.predicted.size();
  std::vector<double> logs(k);
  for (std::size_t i = 0; i < n; ++i) {
    double* p = &s.mean_probs[i * k];
    const double norm = scaled_logs(p, k, 1.0 / temperature, logs.data());
    double h = 0.0;
    for (std::size_t j = 0; j < k; ++j) {
      p[j] = std::exp(logs[j] - norm);
      if (p[j] > 0.0) h -= p[j] * (logs[j] - norm);
    }
    s.entropy[i] = h;
  }
  return s;
}

double temperature_nll(const PredictiveSummary& s, std::span<const std::int32_t> labels, double temperature) {
  const std::size_t k = check_summary("temperature_nll", s);
  check_temperature("temperature_nll", temperature);
  const std::size_t n = s.predicted.size();
  if (labels.size() != n) throw Error(fmt::format("temperature_nll: {} labels for {} inputs", labels.size(), n));
  std::vector<double> logs(k);
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t y = labels[i];
    if (y < 0 || static_cast<std::size_t>(y) >= k) {
      throw Error(fmt::format("temperature_nll: label[{}] = {} is outside [0, {})", i, y, k));
    }
    const double norm = scaled_logs(&s.mean_probs[i * k], k, 1.0 / temperature, logs.data());
    sum -= logs[static_cast<std::size_t>(y)] - norm;
  }
  return sum / static_cast<double>(n);
}

TemperatureFit fit_temperature(const PredictiveSummary& summary, std::span<const std::int32_t> labels) {
  const double lo = std::log(kMinTemperature), hi = std::log(kMaxTemperature);
  const auto nll = [&](double u) { return temperature_nll(summary, labels, std::exp(u)); };
  // Grid in u = log tau, 4 points per factor e.
  constexpr int kGrid = 49;
  double best_u = 0.0, best = std::numeric_limits<double>::infinity();
  int best_index = 0;
  for (int g = 0; g < kGrid; ++g) {
    const double u = lo + (hi - lo) * g / (kGrid - 1);
    const double v = nll(u);
    if (v < best) best = v, best_u = u, best_index = g;
  }
  // Golden-section search on the grid cell either side of the best point.
  const double step = (hi - lo) / (kGrid - 1);
  double a = best_index > 0 ? best_u - step : best_u, b = best_index < kGrid - 1 ? best_u + step : best_u;
  const double golden = (std::sqrt(5.0) - 1.0) / 2.0;
  double c = b - golden * (b - a), d = a + golden * (b - a);
  double fc = nll(c), fd = nll(d);
  while (b - a > 1e-7) {
    if (fc < fd) {
      b = d, d = c, fd = fc;
      c = b - golden * (b - a), fc = nll(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + golden * (b - a), fd = nll(d);
    }
  }
  const double u = 0.5 * (a + b), at = nll(u);
  TemperatureFit fit;
  fit.nll_before = nll(0.0);
  if (at <= best) {
    fit.temperature = std::exp(u), fit.nll_after = at;
  } else {
    fit.temperature = std::exp(best_u), fit.nll_after = best;
  }
  if (!std::isfinite(fit.nll_after)) throw Error("fit_temperature: the NLL is not finite at any temperature");
  return fit;
}

namespace {

nlohmann::json fitted_json(const FittedTemperature& f) {
  return {{"temperature", f.temperature}, {"samples", f.samples}, {"seed", f.seed},
          {"validation_images", f.validation_images}, {"nll_before", f.nll_before}, {"nll_after", f.nll_after},
          {"ece_before", f.ece_before}, {"ece_after", f.ece_after}};
}

FittedTemperature fitted_from(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": must be an object");
  const auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) throw Error(fmt::format("{}.{}: missing", where, key));
    return j.at(key);
  };
  const auto number = [&](const char* key) {
    const auto& v = field(key);
    if (!v.is_number()) throw Error(fmt::format("{}.{}: must be a number", where, key));
    const double x = v.get<double>();
    if (!std::isfinite(x)) throw Error(fmt::format("{}.{}: must be finite", where, key));
    return x;
  };
  const auto count = [&](const char* key, std::int64_t lo, std::int64_t hi) {
    const auto& v = field(key);
    if (!v.is_number_integer()) throw Error(fmt::format("{}.{}: must be an integer", where, key));
    const bool in_range = v.is_number_unsigned() ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(hi) &&
                                                       static_cast<std::int64_t>(v.get<std::uint64_t>()) >= lo
                                                 : v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi;
    if (!in_range) {
      throw Error(fmt::format("{}.{}: must be in {}..{}", where, key, lo, hi));
    }
    return static_cast<int>(v.get<std::int64_t>());
  };
  FittedTemperature f;
  f.temperature = number("temperature");
  if (!(f.temperature >= kMinTemperature && f.temperature <= kMaxTemperature)) {
    throw Error(fmt::format("{}.temperature: must be in [{:g}, {:g}] (what a fit can give), got {:g}", where,
                            kMinTemperature, kMaxTemperature, f.temperature));
  }
  f.samples = count("samples", 1, 10000);
  if (!field("seed").is_number_unsigned()) throw Error(where + ".seed: must be a non-negative integer");
  f.seed = field("seed").get<std::uint64_t>();
  f.validation_images = count("validation_images", 1, 1000000);
  f.nll_before = number("nll_before");
  f.nll_after = number("nll_after");
  f.ece_before = number("ece_before");
  f.ece_after = number("ece_after");
  return f;
}

}  // namespace

std::string calibration_json(const CalibrationRecord& record) {
  nlohmann::json j = {{"format", "spinbayes-calibration"}, {"version", 1}, {"model_ir", record.model_ir}};
  if (record.mc) j["mc"] = fitted_json(*record.mc);
  if (record.deterministic) j["deterministic"] = fitted_json(*record.deterministic);
  return j.dump(2) + "\n";
}

CalibrationRecord parse_calibration(std::string_view text, const std::string& name) {
  // A NUL would end the text for the parser and hide what follows it.
  if (text.find('\0') != std::string_view::npos) throw Error(name + ": not valid JSON (holds a NUL byte)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw Error(name + ": not valid JSON");
  }
  if (!j.is_object() || j.value("format", nlohmann::json()) != "spinbayes-calibration") {
    throw Error(name + ": not a spinbayes calibration (\"format\": \"spinbayes-calibration\")");
  }
  if (j.value("version", nlohmann::json()) != 1) throw Error(name + ": unsupported version (this build reads 1)");
  CalibrationRecord record;
  if (!j.contains("model_ir") || !j.at("model_ir").is_string()) throw Error(name + ": model_ir: missing or not a string");
  record.model_ir = j.at("model_ir").get<std::string>();
  for (const auto& [key, value] : j.items()) {
    if (key != "format" && key != "version" && key != "model_ir" && key != "mc" && key != "deterministic") {
      throw Error(name + ": unknown key '" + printable(key) + "'");
    }
    (void)value;
  }
  if (j.contains("mc")) record.mc = fitted_from(j.at("mc"), name + ": mc");
  if (j.contains("deterministic")) record.deterministic = fitted_from(j.at("deterministic"), name + ": deterministic");
  if (!record.mc && !record.deterministic) throw Error(name + ": holds no temperature (neither \"mc\" nor \"deterministic\")");
  if (record.mc && record.mc->samples < 2) throw Error(name + ": mc.samples: must be at least 2 (Monte Carlo passes)");
  if (record.deterministic && record.deterministic->samples != 1) {
    throw Error(name + ": deterministic.samples: must be 1 (one pass with dropout off)");
  }
  return record;
}

}  // namespace spinbayes
