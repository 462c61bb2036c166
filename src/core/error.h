#pragma once
// One error type for everything a user can get wrong: bad files, bad shapes, bad parameters.
// Its message is a single line that names the file or field; the CLI prints it and exits non-zero.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

namespace spinbayes {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Text from a file or the command line as quoted in an Error: control characters escaped (\n, \r,
// \t, \xNN), so that the message stays on one line; with `ascii`, bytes past ASCII too (\xNN), for
// text that may not be UTF-8.
inline std::string printable(std::string_view text, bool ascii = false) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f || (ascii && c >= 0x80)) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += ch;
    }
  }
  return out;
}

// printable() of at most `longest` bytes of the text, the cut told: for quoting input that may be
// huge (a key or a value of a hostile file) into a one-line message.
inline std::string printable_head(std::string_view text, std::size_t longest = 120) {
  if (text.size() <= longest) return printable(text);
  return printable(text.substr(0, longest), true) + "... (" + std::to_string(text.size()) + " bytes)";
}

}  // namespace spinbayes
