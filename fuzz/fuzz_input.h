#pragma once
// What every fuzz target shares. The parsers under test read files, so each input is written to a
// scratch directory of this process first (in /dev/shm when there is one). run_parser() calls the
// parser and accepts a spinbayes::Error whose message is one line; any other exception, a
// multi-line message, a crash or a sanitizer report is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "core/error.h"

namespace spinbayes::fuzz {

inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::error_code ec;
    std::filesystem::path base = "/dev/shm";
    if (!std::filesystem::is_directory(base, ec) || ::access(base.c_str(), W_OK) != 0) {
      base = std::filesystem::temp_directory_path();
    }
    auto d = base / ("spinbayes-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_dir(), ignored);
    });
    return d;
  }();
  return dir;
}

inline std::filesystem::path write_input(const std::string& name, std::string_view bytes) {
  const auto path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A property of a successful parse that must hold; a violation aborts (a finding).
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz: property violated: %s\n", what);
    std::abort();
  }
}

template <class Parse>
int run_parser(Parse&& parse) {
  try {
    parse();
  } catch (const spinbayes::Error& e) {
    const std::string_view message = e.what();
    if (message.empty() || message.find_first_of("\r\n") != std::string_view::npos) {
      std::fprintf(stderr, "fuzz: Error message is not one non-empty line: [%s]\n", e.what());
      std::abort();
    }
  }
  // Anything else propagates: libFuzzer reports an uncaught exception as a crash.
  return 0;
}

}  // namespace spinbayes::fuzz
