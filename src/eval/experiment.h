#pragma once
// `spinbayes experiment`: the whole comparison in one command. A deterministic BNN, MC-Dropout
// (element) and MC-SpatialDropout, trained the same way on Fashion-MNIST, are evaluated in software
// (the engine) and on the simulated chip, against OOD sets, priced by the cost model, and written
// up as DIR/report.md, DIR/results.json and PNG figures.
//
// Every stage (a training run, an evaluation, a sweep, a pricing) stores its result in
// DIR/stages/<stage>.json, written atomically together with the key of its inputs (model IR
// fingerprint, T, seeds, image counts, ...). A run started again skips the stages whose stored key
// equals the current one and redoes the others; an interrupted training run resumes from its last
// checkpoint. Each number comes from the same library call the `eval`, `sweep` and `cost`
// subcommands make, and the report gives that command next to it.
//
// The parts: the plan of models and stages (eval/experiment_plan.h), the stage store and progress
// lines (eval/stage_cache.h), the typed results (eval/experiment_results.h), and the figures and
// report.md drawn from them (eval/experiment_report.h).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/datasets.h"
#include "eval/experiment_results.h"
#include "model/model_spec.h"
#include "model/network.h"

namespace spinbayes {

struct ExperimentOptions {
  std::filesystem::path out;     // report.md, results.json, figures/, stages/
  std::filesystem::path models;  // the training runs; empty: out/models (the experiment's own)
  bool quick = false;

  // Training, the same for every model (dropout kind and p aside).
  std::string architecture = "vgg-small";  // a zoo name, or "custom" for network_file
  int width = 32;
  std::filesystem::path network_file;  // --model given as a network file (absolute); else empty
  int epochs = 8;  // the recipe has 12; 8 keeps the full run from nothing within the hour on 2 cores
  // The first epochs trained once, without dropout, and shared by every model (each then trains the
  // rest with its own dropout); 0: each model trains every epoch on its own.
  int shared_epochs = 0;
  int batch = 100;
  double lr = 2e-3;
  int train_subset = 0;   // training images (0 = all that the validation split leaves)
  int validation = 5000;  // held out; sets the OOD threshold
  std::uint64_t seed = 1;
  // Training seeds: seed, seed + 1, ...; each a whole experiment in out/seed-<s> (experiment_seeds.h).
  // The full run trains 3; --quick 1.
  int seeds = 1;
  // `models` is the experiment's own directory (a multi-seed run's out/models): a run there trained
  // with other settings is trained again, as in out/models, instead of being an error.
  bool own_models_dir = false;
  double p = 0.1;               // dropout rate of the element and spatial models
  std::vector<double> extra_p;  // more spatial models at these rates (the p axis of the energy chart)

  // Evaluation.
  int samples = 10;                             // T of the main tables, software and chip
  std::vector<int> t_values = {1, 3, 10, 30};  // the T axis (software)
  int test_count = 0;           // test images of the software tables (0 = all 10 000)
  int chip_test_count = 2000;   // test images on the chip (0 = all)
  int curve_test_count = 2000;  // test images of each point of the T axis
  int ood_count = 0;         // images per OOD set (0 = as many as test images)
  std::vector<std::string> ood = {"mnist", "gaussian", "rotate90"};
  std::uint64_t eval_seed = 1, chip_seed = 1;
  // The chip of every chip stage, sweep and price: a preset (default, wired, unwired, ideal) or a
  // hardware config file.
  std::string hardware = "default";
  // The uncertainty split on the chip (the MC models): every test image on this many chips x T
  // passes (eval --backend cim --chips K), the first split_test_count test images.
  int split_chips = 5, split_test_count = 500;

  // Accuracy against device variation (spintronic chip, `spinbayes sweep`).
  std::string sweep_param = "mtj.sigma_rp";
  std::vector<double> sweep_values = {0, 0.03, 0.06, 0.1};
  int sweep_chips = 20, sweep_samples = 5, sweep_test_count = 300;

  // Runs to compare instead of training them (the deterministic, element and spatial models, in
  // that order; trained here or imported from ONNX): their networks, data splits and weights as they
  // are. Empty: the experiment trains its models.
  std::vector<std::filesystem::path> runs;

  int threads = 2;
  bool quiet = false;
  DataPaths paths = DataPaths::from_environment();
  std::string command;  // the command line, quoted into the report

  // The full run (vgg-small width 32, the README's training recipe) and the --quick one.
  static ExperimentOptions full();
  static ExperimentOptions quick_run();

  void validate() const;  // throws Error naming the option
  // The network every model trains: the zoo architecture at `width`, or the network file's.
  ModelSpec model_spec() const;
  // Short name of that network in run directory names: "vgg32", "resnet20-16", or the network file's stem.
  std::string network_name() const;
  // What a model's run directory name adds for the training seed: "" for seed 1 (the names of a
  // single-seed run and of scripts/recipe.sh), "-s<seed>" for any other.
  std::string model_suffix() const;
};

struct ExperimentResult {
  ExperimentResults results;  // what DIR/results.json holds
  std::vector<std::string> reused_models;  // finished training runs found in place
  int stages_run = 0, stages_cached = 0;
  double seconds = 0;
};

// Loads the test set and builds every OOD set on a few of its images: a missing data set or an
// unreadable idx: file fails here, before anything is written. Throws Error naming the option.
void probe_experiment_data(const ExperimentOptions& o);
ExperimentResult run_experiment(const ExperimentOptions& options);

// A command line as one shell line (arguments quoted where needed), for the report.
std::string shell_line(const std::vector<std::string>& args);

}  // namespace spinbayes
