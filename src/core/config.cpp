#include "core/config.h"

#include <algorithm>

#include <cmath>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_input.h"
#include "core/read_file.h"

namespace spinbayes {

void ConfigTable::number(const std::string& key, double& value, double lo, double hi, const std::string& unit,
                         const std::string& source) {
  entries_.push_back({key, unit, source, Entry::Type::number, &value, nullptr, lo, hi, {}, {}, {}});
}

void ConfigTable::integer(const std::string& key, int& value, int lo, int hi, const std::string& unit,
                          const std::string& source) {
  entries_.push_back({key, unit, source, Entry::Type::integer, nullptr, &value, static_cast<double>(lo),
                      static_cast<double>(hi), {}, {}, {}});
}

void ConfigTable::add_choice(const std::string& key, std::vector<std::string> words, const std::string& source,
                             std::function<int()> get, std::function<void(int)> set) {
  entries_.push_back({key, "", source, Entry::Type::choice, nullptr, nullptr, 0, 0, std::move(words), std::move(get),
                      std::move(set)});
}

const ConfigTable::Entry* ConfigTable::find(const std::string& key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

const std::string* ConfigTable::number_unit(const std::string& key) const {
  const Entry* e = find(key);
  return e != nullptr && e->type != Entry::Type::choice ? &e->unit : nullptr;
}

std::vector<std::string> ConfigTable::number_keys() const {
  std::vector<std::string> keys;
  for (const Entry& e : entries_) {
    if (e.type != Entry::Type::choice) keys.push_back(e.key);
  }
  return keys;
}

namespace {

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

}  // namespace

void ConfigTable::check_entry(const Entry& e, const std::string& origin) const {
  switch (e.type) {
    case Entry::Type::number:
      if (!std::isfinite(*e.number) || *e.number < e.lo || *e.number > e.hi) {
        throw Error(fmt::format("{}: {} = {} is out of range [{:g}, {:g}]{}", origin, e.key, *e.number, e.lo, e.hi,
                                e.unit.empty() ? "" : " " + e.unit));
      }
      break;
    case Entry::Type::integer:
      if (*e.integer < e.lo || *e.integer > e.hi) {
        throw Error(fmt::format("{}: {} = {} is out of range [{:g}, {:g}]", origin, e.key, *e.integer, e.lo, e.hi));
      }
      break;
    case Entry::Type::choice: {
      const int i = e.choice_index();
      if (i < 0 || i >= static_cast<int>(e.choices.size())) {
        throw Error(fmt::format("{}: {} = choice {} is not one of: {}", origin, e.key, i, join(e.choices)));
      }
      break;
    }
  }
}

void ConfigTable::check(const std::string& origin) const {
  for (const Entry& e : entries_) check_entry(e, origin);
}

void ConfigTable::set(const Entry& e, const nlohmann::json& value, const std::string& origin) {
  switch (e.type) {
    case Entry::Type::number:
      if (!value.is_number()) throw Error(fmt::format("{}: {} must be a number", origin, e.key));
      *e.number = value.get<double>();
      break;
    case Entry::Type::integer: {
      // A whole number written as a real (8.0, or 8 from a sweep's list of doubles) is that integer.
      if (!value.is_number()) throw Error(fmt::format("{}: {} must be an integer", origin, e.key));
      const double number = value.is_number_unsigned() ? static_cast<double>(value.get<std::uint64_t>())
                            : value.is_number_integer() ? static_cast<double>(value.get<std::int64_t>())
                                                        : value.get<double>();
      if (!std::isfinite(number) || number != std::floor(number)) {
        throw Error(fmt::format("{}: {} must be an integer, got {}", origin, e.key, value.dump()));
      }
      if (number < e.lo || number > e.hi) {
        throw Error(fmt::format("{}: {} = {} is out of range [{:g}, {:g}]", origin, e.key, value.dump(), e.lo, e.hi));
      }
      *e.integer = static_cast<int>(number);
      break;
    }
    case Entry::Type::choice:
    {
      if (!value.is_string()) throw Error(fmt::format("{}: {} must be a string", origin, e.key));
      const auto& word = value.get_ref<const std::string&>();
      const auto found = std::find(e.choices.begin(), e.choices.end(), word);
      if (found == e.choices.end()) {
        throw Error(fmt::format("{}: {} = '{}' is not one of: {}", origin, e.key, printable_head(word), join(e.choices)));
      }
      e.set_choice_index(static_cast<int>(found - e.choices.begin()));
      break;
    }
  }
  check_entry(e, origin);
}

void ConfigTable::walk(const nlohmann::json& node, const std::string& prefix, const std::string& origin,
                       std::set<std::string>& given) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (const Entry* e = find(key)) {
      if (!given.insert(key).second) throw Error(fmt::format("{}: {} is given twice (once dotted, once nested)", origin, key));
      set(*e, it.value(), origin);
      continue;
    }
    // A section: the prefix of some known key, holding an object.
    bool section = false;
    for (const Entry& entry : entries_) section = section || entry.key.rfind(key + ".", 0) == 0;
    if (!section) throw Error(fmt::format("{}: unknown key '{}'", origin, printable_head(key)));
    if (!it.value().is_object()) {
      throw Error(fmt::format("{}: {} is a section: expected an object, got {}", origin, printable_head(key),
                              it.value().type_name()));
    }
    walk(it.value(), key, origin, given);
  }
}

void ConfigTable::apply(const nlohmann::json& document, const std::string& origin) {
  if (!document.is_object()) throw Error(origin + ": expected a JSON object at the top level");
  std::set<std::string> given;
  walk(document, "", origin, given);
}

void ConfigTable::apply_file(const std::filesystem::path& path) {
  const std::string text = read_file_bytes(path);
  nlohmann::json document;
  try {
    document = parse_user_json(text, /*comments=*/true);
  } catch (const nlohmann::json::exception& e) {  // parse_error; out_of_range for 1e400
    // The library's message without its "[json.exception.<kind>.<id>] " tag.
    std::string what = e.what();
    if (what.rfind("[json.exception.", 0) == 0 && what.find("] ") != std::string::npos) {
      what = what.substr(what.find("] ") + 2);
    }
    // The library quotes the bytes it stopped at, which may not be UTF-8.
    throw Error(path.string() + ": not valid JSON (" + printable(what.substr(0, what.find('\n')), /*ascii=*/true) + ")");
  } catch (const Error& e) {
    throw Error(path.string() + ": " + e.what());
  }
  apply(document, path.string());
}

std::string ConfigTable::to_commented_json() const {
  // Group by section (the key up to its last dot), in the order the sections first appear.
  std::vector<std::string> sections;
  std::map<std::string, std::vector<const Entry*>> by_section;
  for (const Entry& e : entries_) {
    const auto dot = e.key.rfind('.');
    const std::string section = dot == std::string::npos ? "" : e.key.substr(0, dot);
    if (by_section.find(section) == by_section.end()) sections.push_back(section);
    by_section[section].push_back(&e);
  }
  std::string out = "{\n";
  for (std::size_t s = 0; s < sections.size(); ++s) {
    const auto& entries = by_section[sections[s]];
    const bool nested = !sections[s].empty();
    const std::string indent = nested ? "    " : "  ";
    if (nested) out += fmt::format("  \"{}\": {{\n", sections[s]);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = *entries[i];
      const auto dot = e.key.rfind('.');
      const std::string name = dot == std::string::npos ? e.key : e.key.substr(dot + 1);
      std::string value;
      switch (e.type) {
        case Entry::Type::number: value = nlohmann::json(*e.number).dump(); break;
        case Entry::Type::integer: value = std::to_string(*e.integer); break;
        case Entry::Type::choice: value = nlohmann::json(e.choices.at(static_cast<std::size_t>(e.choice_index()))).dump(); break;
      }
      std::string note = e.unit;
      if (e.type == Entry::Type::choice) note = join(e.choices);
      if (!e.source.empty()) note += (note.empty() ? "" : "; ") + e.source;
      const bool more = i + 1 < entries.size() || (!nested && s + 1 < sections.size());
      out += fmt::format("{}\"{}\": {}{}{}\n", indent, name, value, more ? "," : "",
                         note.empty() ? "" : "  // " + note);
    }
    if (nested) out += s + 1 < sections.size() ? "  },\n" : "  }\n";
  }
  out += "}\n";
  return out;
}

}  // namespace spinbayes
