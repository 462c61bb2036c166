#include "population/yield_spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace spinbayes {

namespace {

const char* symbol(Comparison c) {
  switch (c) {
    case Comparison::at_least: return ">=";
    case Comparison::at_most: return "<=";
    case Comparison::above: return ">";
    case Comparison::below: return "<";
  }
  return "?";
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool Requirement::met_by(double value) const {
  switch (comparison) {
    case Comparison::at_least: return value >= bound;
    case Comparison::at_most: return value <= bound;
    case Comparison::above: return value > bound;
    case Comparison::below: return value < bound;
  }
  return false;
}

std::string Requirement::text() const { return fmt::format("{}{}{}", metric, symbol(comparison), bound); }

std::string YieldSpec::text() const {
  std::vector<std::string> parts;
  for (const auto& r : requirements) parts.push_back(r.text());
  return fmt::format("{}", fmt::join(parts, ","));
}

YieldSpec parse_yield_spec(std::string_view text, const std::vector<std::string>& metrics, const std::string& option) {
  YieldSpec spec;
  if (trimmed(text).empty()) throw Error(option + ": empty specification (e.g. \"accuracy>=0.89,ece<=0.05\")");
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view part = trimmed(text.substr(start, comma - start));
    const std::string quoted = fmt::format("'{}'", printable(part.substr(0, 120), true)) + (part.size() > 120 ? "..." : "");
    if (part.empty()) throw Error(option + ": an empty requirement (two commas, or a comma at an end)");
    const std::size_t op = part.find_first_of("<>=!");
    if (op == std::string_view::npos) {
      throw Error(option + ": " + quoted + " has no comparison (write METRIC>=NUMBER, <=, > or <)");
    }
    Requirement r;
    r.metric = std::string(trimmed(part.substr(0, op)));
    std::size_t op_length = 1;
    if (part.compare(op, 2, ">=") == 0) {
      r.comparison = Comparison::at_least, op_length = 2;
    } else if (part.compare(op, 2, "<=") == 0) {
      r.comparison = Comparison::at_most, op_length = 2;
    } else if (part[op] == '>') {
      r.comparison = Comparison::above;
    } else if (part[op] == '<') {
      r.comparison = Comparison::below;
    } else {
      throw Error(option + ": " + quoted + ": unknown comparison (known: >=, <=, >, <)");
    }
    if (r.metric.empty()) throw Error(option + ": " + quoted + " names no metric");
    if (std::find(metrics.begin(), metrics.end(), r.metric) == metrics.end()) {
      throw Error(fmt::format("{}: unknown metric '{}' (known: {})", option,
                              printable(std::string_view(r.metric).substr(0, 120), true) + (r.metric.size() > 120 ? "..." : ""),
                              fmt::join(metrics, ", ")));
    }
    const std::string_view number = trimmed(part.substr(op + op_length));
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), r.bound);
    if (!number.empty() && ec == std::errc::result_out_of_range && end == number.data() + number.size()) {
      throw Error(option + ": " + quoted + ": '" + printable(number, true) + "' is outside the range of a double");
    }
    if (number.empty() || ec != std::errc() || end != number.data() + number.size() || !std::isfinite(r.bound)) {
      throw Error(option + ": " + quoted + ": '" + printable(number, true) + "' is not a finite number");
    }
    spec.requirements.push_back(std::move(r));
    start = comma + 1;
  }
  return spec;
}

}  // namespace spinbayes
