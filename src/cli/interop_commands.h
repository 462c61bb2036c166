#pragma once
// `spinbayes import`: a binary network from ONNX (PyTorch's export) into a run directory that
// every other command reads; `spinbayes predict`: Monte Carlo probabilities (or logits) of images
// given as a .npy array, on the engine or a simulated chip, written as a .npy array.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "data/datasets.h"

namespace spinbayes {

struct ImportCommand {
  CLI::App* app = nullptr;
  std::filesystem::path onnx, out;
  std::string dropout = "none", dropout_layers = "all", data = "fashion-mnist";
  double p = 0.0;
  int validation = 5000;
  std::uint64_t seed = 1;
  DataPaths paths = DataPaths::from_environment();
};
std::unique_ptr<ImportCommand> add_import_command(CLI::App& app);
void run_import_command(const ImportCommand& command);

struct PredictCommand {
  CLI::App* app = nullptr;
  std::filesystem::path model, images, out;
  std::string backend = "engine", hardware = "default";
  std::uint64_t chip_seed = 1, seed = 1;
  int samples = 20, threads = 2;
  bool logits = false, no_dropout = false;
};
std::unique_ptr<PredictCommand> add_predict_command(CLI::App& app);
void run_predict_command(const PredictCommand& command);

}  // namespace spinbayes
