#include "core/json_input.h"

#include <set>
#include <vector>

#include "core/error.h"

namespace spinbayes {

nlohmann::json parse_user_json(const std::string& text, bool comments) {
  // The parser would stop at a NUL byte and take what came before it for the whole file.
  if (text.find('\0') != std::string::npos) throw Error("not valid JSON (holds a NUL byte)");
  // The keys seen so far in each object still open, innermost last.
  std::vector<std::set<std::string>> open;
  const nlohmann::json::parser_callback_t check = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open.emplace_back();
    } else if (event == Event::object_end) {
      if (!open.empty()) open.pop_back();
    } else if (event == Event::key && !open.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open.back().insert(key).second) throw Error("duplicate key '" + printable_head(key) + "'");
    }
    return true;
  };
  return nlohmann::json::parse(text, check, true, comments);
}

}  // namespace spinbayes
