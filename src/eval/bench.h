#pragma once
// `spinbayes bench`: the LibTorch path and the bit-packed engine on the same images and samples in
// one run, the machine's popcount roof, the engine's share of it per 3x3 convolution, and the
// prefix-reuse scaling of the engine with T.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/datasets.h"

namespace spinbayes {

struct BenchOptions {
  std::filesystem::path model;
  int samples = 20;
  int images = 256;
  int threads = 2;
  std::uint64_t seed = 1;
  std::vector<int> scaling_samples = {1, 10, 50};
  double roof_seconds = 1.0;
  std::string hardware;  // non-empty: also time the simulated chip ("default", "wired", "unwired", "ideal" or a file)
  DataPaths paths = DataPaths::from_environment();
};

struct LayerBench {
  int layer = 0;
  std::int64_t macs = 0;  // per image
  double macs_per_s = 0, roof_share = 0;
  // All images and samples: a 3x3 convolution's dots; a shortcut convolution's whole layer
  // (dots and decisions), as are its residual block's layers in block_seconds.
  double seconds = 0;
  double block_seconds = 0, block_share = 0;  // a shortcut convolution: its block's time, its share
};

struct ScalingPoint {
  int samples = 0;
  double seconds = 0, predicted_seconds = 0;
};

struct BenchReport {
  std::string architecture, dropout, dropout_layers;
  int width = 0, images = 0, samples = 0, threads = 0;
  std::string network;  // network_description() of the model
  double torch_samples_per_s = 0, engine_samples_per_s = 0, ratio = 0;
  double engine_binary_macs_per_s = 0, popcount_roof_macs_per_s = 0;
  std::string kernel;
  std::vector<LayerBench> conv3x3;
  std::vector<LayerBench> shortcuts;  // residual blocks' 1x1 shortcut convolutions
  std::int64_t prefix_macs = 0, suffix_macs = 0;  // per image / per sample
  double prefix_seconds = 0;                      // the prefix of all images, alone
  std::vector<ScalingPoint> scaling;
  // The chip simulator on the same images and samples (when asked for).
  std::string hardware;
  double cim_samples_per_s = 0, cim_time_over_engine = 0, cim_setup_seconds = 0;
  double cim_analog_share = 0;  // hidden-layer decisions the screen sent through the analog sum
  // The same share layer by layer (the model's layer index, its decisions per image and sample),
  // and the mean over the layer's columns of the bound on the wires' and calibration's part that
  // widens the screen (CellArray::systematic_bound, dot units; 0 without them).
  struct LayerShare {
    int layer = 0;
    double decisions = 0, analog_share = 0, systematic_bound = 0;
  };
  std::vector<LayerShare> cim_layers;
  // With IR drop on (crossbar.wire_resistance_ohm > 0): the same chip without wires, timed in the
  // same run, and the time IR drop adds as a factor on it.
  double cim_without_wires_samples_per_s = 0, ir_drop_time_factor = 0;
};

BenchReport run_bench(const BenchOptions& options);
nlohmann::json bench_json(const BenchReport& report);
std::string bench_table(const BenchReport& report);

}  // namespace spinbayes
