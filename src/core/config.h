#pragma once
// Parameter tables for the hardware and technology files: every parameter has a dotted key
// ("mtj.tmr"), a place it is stored, a range, a unit and the published source of its default.
// Files are JSON with // comments; a file may give any subset of keys, the rest keep their
// defaults. Unknown keys, wrong types and out-of-range values are one-line errors naming the file
// and the key. to_commented_json() writes the table back out, each value with its unit and source.
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace spinbayes {

class ConfigTable {
 public:
  // A real number in [lo, hi].
  void number(const std::string& key, double& value, double lo, double hi, const std::string& unit,
              const std::string& source);
  // An integer in [lo, hi].
  void integer(const std::string& key, int& value, int lo, int hi, const std::string& unit, const std::string& source);
  // One of a fixed set of words, stored as an enum whose value i is words[i].
  template <typename Enum>
  void choice(const std::string& key, Enum& value, std::vector<std::string> words, const std::string& source) {
    add_choice(key, std::move(words), source, [&value] { return static_cast<int>(value); },
               [&value](int i) { value = static_cast<Enum>(i); });
  }

  // The unit of a numeric key, or nullptr when `key` is not a number (or not a key).
  const std::string* number_unit(const std::string& key) const;
  std::vector<std::string> number_keys() const;

  // Applies a parsed document; `origin` names it in errors ("hw.json").
  void apply(const nlohmann::json& document, const std::string& origin);
  // Reads and applies a file (JSON, // and /* */ comments allowed).
  void apply_file(const std::filesystem::path& path);
  // Checks every current value against its range (defaults and values set in code alike).
  void check(const std::string& origin) const;
  // The whole table as commented JSON: a file that apply_file() reads back to the same values.
  std::string to_commented_json() const;

 private:
  struct Entry {
    std::string key, unit, source;
    enum class Type { number, integer, choice } type = Type::number;
    double* number = nullptr;
    int* integer = nullptr;
    double lo = 0, hi = 0;
    std::vector<std::string> choices;
    std::function<int()> choice_index;              // the current word's index in `choices`
    std::function<void(int)> set_choice_index;
  };
  void add_choice(const std::string& key, std::vector<std::string> words, const std::string& source,
                  std::function<int()> get, std::function<void(int)> set);
  const Entry* find(const std::string& key) const;
  void set(const Entry& entry, const nlohmann::json& value, const std::string& origin);
  void check_entry(const Entry& entry, const std::string& origin) const;
  // Sets the document's keys under `prefix`; `given`: the full keys set so far, so that one given
  // both dotted and nested ({"mtj.delta": 30, "mtj": {"delta": 40}}) is refused.
  void walk(const nlohmann::json& node, const std::string& prefix, const std::string& origin, std::set<std::string>& given);
  std::vector<Entry> entries_;
};

}  // namespace spinbayes
