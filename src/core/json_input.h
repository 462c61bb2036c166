#pragma once
// JSON a user writes by hand (network files, hardware and technology configs): parsed as
// nlohmann::json does, but a key given twice in one object is an error, where the library would
// keep the last one silently.
#include <string>

#include <nlohmann/json.hpp>

namespace spinbayes {

// Throws nlohmann::json::exception for text that is not JSON, Error("duplicate key '<key>'")
// for an object that names a key twice, and Error for a NUL byte anywhere in the text. With `comments`, // and /* */ comments are allowed.
nlohmann::json parse_user_json(const std::string& text, bool comments = false);

}  // namespace spinbayes
