#include "core/fingerprint.h"

#include <fmt/format.h>

#include "core/read_file.h"

namespace spinbayes {

std::string fingerprint(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return fmt::format("{:016x}", h);
}

std::string file_fingerprint(const std::filesystem::path& path) { return fingerprint(read_file_bytes(path)); }

}  // namespace spinbayes
