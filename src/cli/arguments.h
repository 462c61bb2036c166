#pragma once
// The command line's own checks and parsers, shared by every subcommand: numbers (one parser for
// every option that takes a list of numbers), UTF-8 arguments, and CLI11's errors turned into the
// one-line form "spinbayes: error: ...".
#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/text.h"

namespace spinbayes {

// The simulated chip's options given to a command that runs another backend: an error, not ignored.
inline void refuse_without_chip(const CLI::App& app, bool chip, std::initializer_list<const char*> options) {
  for (const char* option : options) {
    if (!chip && app.count(option) > 0) throw Error(std::string(option) + ": only with --backend cim");
  }
}

// For options stored in a std::uint64_t (the seeds): CLI11 would wrap "-1" to 2^64 - 1 and
// saturate what is past 2^64 - 1; this refuses both, and anything but decimal digits.
inline CLI::Validator seed_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::uint64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
          return "'" + printable(text) + "' is not a whole number in 0..18446744073709551615";
        }
        return std::string();
      },
      "UINT64");
}

// "a,b,c" as numbers (empty items skipped).
inline std::vector<double> parse_number_list(const std::string& option, const std::string& text) {
  std::vector<double> values;
  for (const auto& item : split_list(text)) values.push_back(parse_number(option, item));
  return values;
}

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
inline bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    int extra = 0;
    unsigned min = 0, code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1, min = 0x80, code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, min = 0x800, code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, min = 0x10000, code = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<std::size_t>(extra) >= text.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + static_cast<std::size_t>(k)]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += static_cast<std::size_t>(extra) + 1;
  }
  return true;
}

// An argument quoted in an error: control characters and bytes past ASCII escaped.
inline std::string quoted_argument(std::string_view text) { return printable(text, true); }

}  // namespace spinbayes
