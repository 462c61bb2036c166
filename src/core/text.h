#pragma once
// Small text helpers shared by the command line's parsers.
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace spinbayes {

// "a,b,,c" -> {"a", "b", "", "c"}: the items between separators, empty ones kept (one item for
// an empty text).
inline std::vector<std::string> split_fields(const std::string& text, char separator = ',') {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (true) {
    const auto at = text.find(separator, start);
    items.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return items;
    start = at + 1;
  }
}

// "a,b,,c" -> {"a", "b", "c"}: comma-separated items, empty ones skipped.
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  for (std::string& item : split_fields(text)) {
    if (!item.empty()) items.push_back(std::move(item));
  }
  return items;
}

// `text` as a finite number: all of it (no trailing junk, no blanks), an optional leading '+'.
// Throws Error("<option>: '<text>' is not a number"), the text escaped onto one line.
inline double parse_number(const std::string& option, const std::string& text) {
  std::string_view digits = text;
  if (digits.size() > 1 && digits.front() == '+' && digits[1] != '-') digits.remove_prefix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || end != digits.data() + digits.size() || ec == std::errc::invalid_argument) {
    throw Error(option + ": '" + printable(text) + "' is not a number");
  }
  if (ec == std::errc::result_out_of_range || !std::isfinite(value)) {
    throw Error(option + ": '" + printable(text) + "' is not a finite number");
  }
  return value;
}

}  // namespace spinbayes
