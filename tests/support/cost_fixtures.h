#pragma once
// Shared by the cost-model and `spinbayes cost` tests: a zoo spec with its dropout placed, and a
// fresh temporary directory with small file helpers.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "model/model_spec.h"

namespace spinbayes::testing {

namespace fs = std::filesystem;

inline ModelSpec spec_of(const std::string& architecture, int width, const std::string& dropout_layers = "all",
                         DropoutKind kind = DropoutKind::spatial, double p = 0.1) {
  ModelSpec spec;
  spec.architecture = architecture;
  spec.width = width;
  spec.dropout = kind;
  spec.p = p;
  spec.dropout_layers = dropout_layers;
  return spec;
}

inline fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("spinbayes-cost-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

inline void write_file(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace spinbayes::testing
