#pragma once
// What `spinbayes experiment` will do, decided once from its options: the models by role, and one
// ordered list of stages (train, evaluate in software and on the chip, the T axis, the sweep, the
// pricing), each with its stage name, the key of its inputs, the subcommand that gives the same
// numbers and an estimate of its work. The progress lines and the run walk this same list.
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/calibrate.h"
#include "eval/evaluation.h"
#include "eval/experiment.h"
#include "eval/experiment_results.h"
#include "eval/stage_cache.h"
#include "eval/sweep.h"
#include "train/run.h"

namespace spinbayes {

struct PlannedModel {
  ModelRole role = ModelRole::deterministic;
  std::string name;         // run directory name, e.g. vgg32-spatial
  std::string description;  // how the report calls it, e.g. "MC-Dropout (element)"
  TrainOptions train;
  std::filesystem::path dir;

  bool main() const { return role != ModelRole::extra_spatial; }  // one of the three compared
  nlohmann::json identity(const std::string& model_ir) const;      // what a stage key holds of it
};

enum class StageKind { train_shared, train, calibrate, software_eval, chip_eval, split, curve_point, sweep, cost };

struct Stage {
  StageKind kind = StageKind::train;
  std::size_t model = 0;  // in ExperimentPlan::models
  std::string name;       // DIR/stages/<name>.json
  std::string what;       // the progress lines' words
  WorkEstimate work;
  nlohmann::json inputs;             // the key less the model
  std::vector<std::string> command;  // the subcommand that computes the same numbers
  CalibrateOptions calibrate;        // the calibration
  EvalOptions eval;                  // the evaluations
  SweepOptions sweep;                // the sweep
  bool on_t_axis = false;  // a software evaluation that is also its model's point of the T axis

  // The key a stored result must hold: the stage's inputs and its model as trained (the
  // fingerprint of its model IR).
  nlohmann::json key(const PlannedModel& model, const std::string& model_ir) const;
};

struct ExperimentPlan {
  std::filesystem::path out;
  std::filesystem::path models_dir;
  bool own_models = true;  // out/models, not a --models directory of finished runs
  std::vector<PlannedModel> models;  // deterministic, element, spatial, then the extra rates
  // With shared epochs: the run of the first ones (dropout off, stopped after them) that every
  // model starts from.
  std::optional<PlannedModel> shared;
  std::vector<Stage> stages;         // in the order they run, each model's after its training
  int samples = 0;                   // the main T
  std::vector<int> priced_t;         // T values the cost stages price: the T axis and the main T

  const PlannedModel& model(ModelRole role) const;  // the first of that role
  // out/calibration/<model>.json: the temperatures the model's evaluations apply (the experiment
  // leaves the training runs' own calibration.json alone).
  std::filesystem::path calibration_file(const PlannedModel& model) const;
};

// Reads the OOD idx: files and the default hardware and technology tables for the keys.
ExperimentPlan plan_experiment(const ExperimentOptions& options);

TrainingSettings training_settings(const TrainOptions& train);
std::vector<std::string> cost_command(const PlannedModel& model, int samples, const std::string& hardware);
// `args` with `--hw hardware` appended, unless it is the default (which the commands take anyway).
std::vector<std::string> with_hardware(std::vector<std::string> args, const std::string& hardware);

}  // namespace spinbayes
