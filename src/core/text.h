#pragma once
// Small text helpers shared by the command line's parsers.
#include <string>
#include <vector>

namespace spinbayes {

// "a,b,,c" -> {"a", "b", "c"}: comma-separated items, empty ones skipped.
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) items.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return items;
}

}  // namespace spinbayes
