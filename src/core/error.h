#pragma once
// One error type for everything a user can get wrong: bad files, bad shapes, bad parameters.
// Its message is a single line that names the file or field; the CLI prints it and exits non-zero.
#include <stdexcept>
#include <string>

namespace spinbayes {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace spinbayes
