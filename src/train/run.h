#pragma once
// A training run: its options (saved as DIR/config.json), the data split it used, and the entry
// points into the LibTorch trainer. This header is torch-free; the CLI and tests include it.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/datasets.h"
#include "data/image_set.h"
#include "model/model_spec.h"

namespace spinbayes {

struct TrainOptions {
  ModelSpec spec;
  DataSet data;  // the in-distribution data set (datasets.h); eval uses it unless told otherwise
  int epochs = 10;
  int batch = 100;
  double lr = 2e-3;  // Adam, cosine-annealed to 0 over the run
  std::uint64_t seed = 1;
  int validation = 5000;  // images held out of the training set (seeded split)
  int subset = 0;         // train on this many images only (0 = all)
  int threads = 2;        // LibTorch intra-op threads
  // Start from another run's last checkpoint rather than from random weights: a run of the same
  // network and schedule (architecture, width, epochs, batch, lr, seed, validation, subset; its
  // dropout may differ) that has finished some but not all of its epochs. This run takes its
  // weights, batch-norm statistics, optimizer state and history, and trains the remaining epochs
  // with its own dropout: models that share their first epochs train those once.
  std::filesystem::path init;
  int init_epochs = 0;  // the epochs taken from `init` (0: trained from scratch); known once it starts
  // A network imported (`spinbayes import`) rather than trained here: the file it came from. Such
  // a run has no epochs (0) and cannot be trained or resumed.
  std::string imported;
  // Not part of the saved configuration:
  std::filesystem::path out;
  bool resume = false;
  bool quiet = false;
  int stop_after_epochs = 0;  // end this invocation after so many completed epochs, as an interruption would
  DataPaths paths = DataPaths::from_environment();

  void validate() const;  // throws Error naming the field
};

// DIR/config.json: {"format": "spinbayes-run", "version": 1, "model": {...}, "training": {...}};
// a network of the user's own (architecture "custom") also as DIR/network.json, a network file.
void save_run_config(const TrainOptions& options);
TrainOptions load_run_config(const std::filesystem::path& dir);

// The files of a run directory that commands read (and so must never write as an output):
// config.json, network.json, checkpoint.pt, train.jsonl, model.sbir, calibration.json and the lock.
std::vector<std::filesystem::path> run_files(const std::filesystem::path& dir);

// The training settings in which `options` differs from `saved` (the run's), each as
// "--epochs 5 (the run has 3)"; empty when a resume may continue the run as it was.
std::vector<std::string> run_setting_differences(const TrainOptions& options, const TrainOptions& saved);

struct TrainingSplit {
  ImageSet train, validation;
};
// The data set's training split divided into (train, validation) by the run's seed, then the train
// part cut to `subset` images when subset > 0.
TrainingSplit load_training_split(const DataPaths& paths, const DataSet& data, int validation, int subset,
                                  std::uint64_t seed);
// The same for a saved run: its data set, validation, subset and seed.
TrainingSplit load_training_split(const DataPaths& paths, const TrainOptions& run);

struct TrainResult {
  int epochs = 0;
  double seconds = 0.0;
  double validation_accuracy = 0.0;  // deterministic pass (dropout off)
};

// Trains (or resumes) the run described by `options`; writes config.json, checkpoint.pt and
// train.jsonl into options.out, each atomically.
TrainResult train_model(const TrainOptions& options);

// Sets LibTorch's intra-op threads (and keeps BLAS single-threaded, so there is one pool).
void configure_threads(int threads);

}  // namespace spinbayes
