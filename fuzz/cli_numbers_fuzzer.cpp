// The command line's number lists (--values, --t-values, --extra-p, --sweep-values) and its UTF-8
// check: parse_number_list either returns finite numbers or throws a one-line Error, and a value it
// returns reads back from its own shortest text.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "cli/arguments.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const std::string text(fuzz::as_text(data, size));
  (void)valid_utf8(text);
  fuzz::require(quoted_argument(text).find('\n') == std::string::npos, "a quoted argument is one line");
  return fuzz::run_parser([&] {
    for (const double v : parse_number_list("--values", text)) {
      fuzz::require(std::isfinite(v), "parsed numbers are finite");
      char buffer[64];
      const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
      fuzz::require(ec == std::errc(), "a parsed number prints");
      fuzz::require(parse_number("--values", std::string(buffer, end)) == v, "a number reads back from its text");
    }
  });
}
